package main

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// The attacks of issue 19, on real node processes: each one silenced
// or fooled a cluster with the shared key of wire version 1.

// TestReplayToARestartedNodeChangesNothing: an attacker on the path
// captures the leader's heartbeats to node 2; the leader dies, node 2
// restarts, and the attacker replays every captured datagram to it.
// With version 1, node 2 accepted all of them and followed the dead
// leader for as long as the capture lasted; now it drops them all, as
// sealed under sessions that died with its old process, and follows
// the live leader.
func TestReplayToARestartedNodeChangesNothing(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders,payments,users", "-heartbeat", "100ms")
	// Every datagram to node 2 passes a recorder, one for each sender.
	taps := map[replica.NodeID]*recorder{1: newRecorder(t, c.UDP[2]), 3: newRecorder(t, c.UDP[2])}
	for _, from := range []replica.NodeID{1, 3} {
		other := 4 - from
		c.Peers[from] = c.Peer(2, taps[from].conn.LocalAddr().String()) + "," + c.Peer(other, c.UDP[other])
	}
	for _, id := range []replica.NodeID{1, 2, 3} {
		c.start(id)
	}
	leaders := c.settle(1, 2, 3)
	dead := mostLeading(leaders)
	if dead == 2 {
		// Node 2 leads most: make the others lead by restarting it
		// first (its channels fail over to 1 and 3).
		c.signal(2, syscall.SIGKILL)
		c.start(2)
		leaders = c.settle(1, 2, 3)
		dead = mostLeading(leaders)
		require.NotEqual(t, replica.NodeID(2), dead, "%v", leaders)
	}
	c.await("the leader's heartbeats captured", func() bool { return len(taps[dead].captured()) >= 20 })
	captured := taps[dead].captured()

	c.signal(dead, syscall.SIGKILL)
	c.signal(2, syscall.SIGKILL)
	c.start(2)
	after := c.settle(2, 4-dead) // node 2 and the survivor (dead is 1 or 3)
	before := c.metric(2, `rolefsm_transport_dropped_total{reason="unknown_session"}`)

	attacker, err := net.DialUDP("udp", nil, mustResolve(t, c.UDP[2]))
	require.NoError(t, err)
	defer attacker.Close()
	for _, d := range captured {
		_, err := attacker.Write(d)
		require.NoError(t, err)
	}
	var data float64
	for _, d := range captured {
		if len(d) > 4 && d[3] == 4 {
			data++
		}
	}
	c.await("every replayed heartbeat dropped", func() bool {
		return c.metric(2, `rolefsm_transport_dropped_total{reason="unknown_session"}`) >= before+data
	})
	st, err := c.status(2)
	require.NoError(t, err)
	for _, ch := range st.Channels {
		assert.NotEqual(t, dead, ch.Leader, "channel %s follows the dead leader", ch.Name)
		assert.Equal(t, after[ch.Name], ch.Leader, "channel %s", ch.Name)
	}
	assert.Zero(t, c.metric(2, `rolefsm_transport_dropped_total{reason="replayed"}`)+
		c.metric(2, `rolefsm_node_batches_dropped_total{reason="stale"}`), "nothing got as far as a window")
}

// TestDuplicateIdentityIsReported: a second process started with node
// 1's key (a copied key file, a second deployment) is reported by the
// peer and by both processes, naming both addresses; once it stops,
// node 1 is heard again and the cluster settles with it. With version
// 1, the peers stayed deaf to node 1 until it restarted, and nothing
// was logged.
func TestDuplicateIdentityIsReported(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2}, "-channels", "orders,payments", "-heartbeat", "100ms")
	c.start(1)
	c.start(2)
	c.settle(1, 2)

	// The copy: node 1's key and id, another address.
	const copyID = 9
	c.UDP[copyID] = freeUDPAddr(t)
	c.KeyFiles[copyID] = c.KeyFiles[1]
	c.Peers[copyID] = c.PeersOf(1)
	c.NodeArgs[copyID] = []string{"-id", "1"}
	c.start(copyID)
	c.await("node 2 counts a duplicate identity", func() bool {
		return c.metric(2, "rolefsm_transport_duplicate_identity_total") >= 1
	})
	c.await("node 1 hears it is duplicated", func() bool {
		return c.metric(1, "rolefsm_transport_duplicate_identity_total") >= 1
	})
	c.signal(copyID, syscall.SIGKILL)
	c.settle(1, 2)

	for id, want := range map[replica.NodeID]string{
		2: "two processes speak with the peer's key",
		1: "another process speaks with this node's key",
	} {
		log, err := os.ReadFile(c.Procs[id].Stderr)
		require.NoError(t, err)
		var line string
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, want) {
				line = l
				break
			}
		}
		require.NotEmpty(t, line, "node %d logged no duplicate\n%s", id, tail(c.Procs[id].Stderr))
		assert.Contains(t, line, `"level":"ERROR"`)
		assert.Contains(t, line, `"component":"udp"`)
		assert.Contains(t, line, c.UDP[copyID], "node %d names the copy's address", id)
		if id == 2 {
			assert.Contains(t, line, c.UDP[1], "node 2 names both addresses")
		}
	}
}

// TestAnotherNodesKeySpeaksAsThatNode: a process holding node 3's key
// that calls itself node 1 is heard as node 3, by a node whose node 1
// is not running: node 2 follows node 3 or leads, and never names
// node 1. With version 1, any key holder could speak as any id.
func TestAnotherNodesKeySpeaksAsThatNode(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders,payments", "-heartbeat", "100ms")
	c.start(2)
	const forger = 9
	c.UDP[forger] = freeUDPAddr(t)
	c.KeyFiles[forger] = c.KeyFiles[3]
	c.Peers[forger] = c.Peer(2, c.UDP[2])
	c.NodeArgs[forger] = []string{"-id", "1"}
	c.start(forger)
	c.await("node 2 hears node 3", func() bool {
		st, err := c.status(2)
		if err != nil {
			return false
		}
		for _, ch := range st.Channels {
			require.NotEqual(t, replica.NodeID(1), ch.Leader, "node 2 follows a node 1 that is not running")
		}
		return c.metric(2, `rolefsm_transport_handshakes_total{kind="answered"}`)+
			c.metric(2, `rolefsm_transport_handshakes_total{kind="completed"}`) >= 1 &&
			(st.Channels[0].Leader == 3 || st.Channels[0].Leader == 2)
	})
	st, err := c.status(forger)
	require.NoError(t, err)
	assert.Equal(t, c.Keys[3].Public().String(), st.PublicKey)
}

// TestFloodFromOnePeerLeavesTheLeaderInOffice: a key holder (node 4,
// in every replica set) sends 15,000 datagrams a second to a follower
// for two seconds, in bursts. What overflows is its own queue (or the
// socket's buffer, for a moment); the leader's heartbeats are served in
// turn with it, so the follower never stands. With version 1, one
// shared inbox filled and two nodes were Leader. (That a flood cannot
// delay another peer's batches is pinned exactly, in process, by
// replica/udp's TestFloodCannotStarveAnotherPeer.)
func TestFloodFromOnePeerLeavesTheLeaderInOffice(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2, 3, 4}, "-channels", "orders,payments", "-heartbeat", "100ms")
	for _, id := range []replica.NodeID{1, 2, 3} {
		c.start(id)
	}
	leaders := c.settle(1, 2, 3)
	leader := mostLeading(leaders)
	victim := replica.NodeID(1)
	if victim == leader {
		victim = 2
	}
	before, err := c.status(victim)
	require.NoError(t, err)

	tr, err := udp.New(udp.Config{ID: 4, Listen: c.UDP[4], Key: c.Keys[4], Logger: quietLog,
		Peers: map[replica.NodeID]udp.Peer{victim: {Addr: c.UDP[victim], Keys: []udp.PublicKey{c.Keys[victim].Public()}}}})
	require.NoError(t, err)
	defer tr.Close()
	flood := replica.Batch{Entries: []replica.Entry{{Channel: "orders", Role: rolefsm.Replica}, {Channel: "payments", Role: rolefsm.Replica}}}
	ctx := context.Background()
	tick := time.NewTicker(20 * time.Millisecond) // bursts of 300 every 20 ms: load, not a wait
	defer tick.Stop()
	for range 100 {
		<-tick.C
		for range 300 {
			flood.Seq++
			require.NoError(t, tr.Send(ctx, victim, flood))
		}
	}
	c.await("the flood read", func() bool {
		return c.metric(victim, `rolefsm_transport_datagrams_received_total`) > 10_000
	})
	after, err := c.status(victim)
	require.NoError(t, err)
	for i, ch := range after.Channels {
		assert.Equal(t, before.Channels[i].Generation, ch.Generation, "channel %s: the victim stood or conceded", ch.Name)
		assert.Equal(t, leaders[ch.Name], ch.Leader, "channel %s", ch.Name)
	}
	t.Logf("victim: inbox_full %v, kernel drops %v, received %v",
		c.metric(victim, `rolefsm_transport_dropped_total{reason="inbox_full"}`),
		c.metric(victim, `rolefsm_transport_kernel_drops_total`),
		c.metric(victim, `rolefsm_transport_datagrams_received_total`))
}

// TestInsecureNodeSaysSo: a node run -insecure warns at start, and says
// so in /status and /metrics, where an alert can see it.
func TestInsecureNodeSaysSo(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2}, "-channels", "orders", "-heartbeat", "100ms")
	c.Insecure = true
	c.start(1)
	c.start(2)
	c.settle(1, 2)
	st, err := c.status(1)
	require.NoError(t, err)
	assert.True(t, st.Insecure)
	assert.Empty(t, st.PublicKey)
	assert.Equal(t, 1.0, c.metric(1, "rolefsm_transport_insecure"))
	log, err := os.ReadFile(c.Procs[1].Stderr)
	require.NoError(t, err)
	assert.Contains(t, string(log), `"level":"WARN","msg":"running insecure: heartbeats travel in the clear, and anyone who can reach this socket can speak as any node","component":"udp"`)
	assert.Contains(t, string(log), `"insecure":true`, "the start line says so too")
}
