package udp

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// TestClusterOverUDP runs three nodes, each a replica.Driver on a UDP
// transport over loopback: they settle on one leader for each of two
// channels, followed by the others; when that leader's process stops,
// the other two settle on another. The deadlines are bounds, not timing
// claims.
func TestClusterOverUDP(t *testing.T) {
	hb, err := policy.NewHeartbeat(100*time.Millisecond, 3)
	require.NoError(t, err)
	ids := []replica.NodeID{1, 2, 3}
	keys := nodeKeys(t, ids...)
	conns := map[replica.NodeID]*net.UDPConn{}
	for _, id := range ids {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		conns[id] = c
	}
	type leaderEvent struct {
		id      replica.NodeID
		channel string
	}
	won := make(chan leaderEvent, 64)
	var stops []context.CancelFunc
	var ended []chan struct{} // closed when each driver's Run returns
	var trs []*Transport
	var drivers []*replica.Driver
	var wg sync.WaitGroup
	for _, id := range ids {
		peers := map[replica.NodeID]Peer{}
		for _, p := range ids {
			if p != id {
				peers[p] = Peer{Addr: conns[p].LocalAddr().String(), Keys: []PublicKey{keys[p].Public()}}
			}
		}
		tr, err := New(Config{ID: id, Conn: conns[id], Key: keys[id], Peers: peers, Logger: quiet})
		require.NoError(t, err)
		trs = append(trs, tr)
		n, err := replica.NewNode(replica.Config{ID: id, Heartbeat: hb}, time.Now())
		require.NoError(t, err)
		for _, ch := range []string{"orders", "payments"} {
			observe := func(_ context.Context, r rolefsm.Record) {
				if r.Err == nil && r.To == rolefsm.Leader {
					select {
					case won <- leaderEvent{id, ch}:
					default: // a wake-up only: never block the driver
					}
				}
			}
			require.NoError(t, n.Open(context.Background(), time.Now(), replica.ChannelConfig{
				Name: ch, Replicas: ids, Options: []rolefsm.Option{rolefsm.WithObserver(observe)},
			}))
		}
		d := replica.NewDriver(n, tr, replica.DriverOptions{})
		drivers = append(drivers, d)
		ctx, stop := context.WithCancel(context.Background())
		stops = append(stops, stop)
		end := make(chan struct{})
		ended = append(ended, end)
		wg.Add(1)
		go func() { defer wg.Done(); defer close(end); assert.NoError(t, d.Run(ctx)) }()
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
		for _, tr := range trs {
			_ = tr.Close()
		}
	}()

	// leaders returns, per channel, the nodes among live that lead it,
	// and whether every other live node follows that one leader.
	settled := func(live []int) (map[string]replica.NodeID, bool) {
		leaders := map[string][]replica.NodeID{}
		follows := map[string][]replica.NodeID{}
		for _, i := range live {
			require.NoError(t, drivers[i].Do(func(n *replica.Node, _ time.Time) error {
				for _, ch := range n.Channels() {
					st, err := n.Status(ch)
					if err != nil {
						return err
					}
					if st.Role == rolefsm.Leader {
						leaders[ch] = append(leaders[ch], n.ID())
					} else {
						follows[ch] = append(follows[ch], st.Leader)
					}
				}
				return nil
			}))
		}
		one := map[string]replica.NodeID{}
		for _, ch := range []string{"orders", "payments"} {
			if len(leaders[ch]) != 1 {
				return nil, false
			}
			for _, f := range follows[ch] {
				if f != leaders[ch][0] {
					return nil, false
				}
			}
			one[ch] = leaders[ch][0]
		}
		return one, true
	}
	// await waits, event by event, until the live nodes have settled.
	await := func(live []int) map[string]replica.NodeID {
		deadline := time.After(20 * time.Second)
		for {
			if one, ok := settled(live); ok {
				return one
			}
			select {
			case <-won:
			case <-time.After(50 * time.Millisecond): // followers adopt a leader on its heartbeat, not an event
			case <-deadline:
				t.Fatal("the cluster did not settle")
			}
		}
	}
	first := await([]int{0, 1, 2})
	killed := first["orders"]

	// The leader's process stops: its driver, then its socket.
	stops[killed-1]()
	<-ended[killed-1]
	require.NoError(t, trs[killed-1].Close())
	var live []int
	for i := range ids {
		if replica.NodeID(i+1) != killed {
			live = append(live, i)
		}
	}
	second := await(live)
	for ch, id := range second {
		assert.NotEqual(t, killed, id, "channel %s", ch)
	}
	for _, i := range live {
		st := trs[i].Stats()
		// The dead node's last datagrams may find a closed socket, or
		// arrive under a session the other side just replaced: nothing
		// else is dropped between honest nodes.
		st.Dropped[UnknownSession] = 0
		assert.Zero(t, st.Dropped, "nothing dropped between honest nodes")
		assert.Positive(t, st.DatagramsReceived)
	}
}
