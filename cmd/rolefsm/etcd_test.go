package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmetcd/etcdtest"
)

// TestNodeProcessesElectInEtcd runs three node processes with
// -election etcd against a real etcd started in the test: one leader
// per channel, each with a fencing token of etcd's; a leader killed with
// SIGKILL is replaced once its session's TTL runs out; a leader stopped
// with SIGTERM hands over through etcd, and the new terms' tokens are
// above the old.
func TestNodeProcessesElectInEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	etcd, err := etcdtest.Start(t.TempDir(), 1)
	require.NoError(t, err)
	t.Cleanup(etcd.Close) // after the nodes are stopped: cleanups run last first
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders,payments,users", "-heartbeat", "100ms",
		"-election", "etcd", "-etcd", etcd.Endpoint(0), "-etcd-ttl", "2s")
	for id := range c.udp {
		c.start(id)
	}
	all := []replica.NodeID{1, 2, 3}
	leaders := c.settle(all...)
	tokens := map[string]int64{}
	for id := range c.procs {
		st, err := c.status(id)
		require.NoError(t, err)
		require.NotNil(t, st.Etcd, "node %d: /status has no etcd section", id)
		assert.Equal(t, uint64(1), st.Etcd.Grants, "node %d: one session", id)
		for _, ch := range st.Channels {
			if ch.Role == "Leader" {
				require.NotNil(t, ch.Token, "%s: its leader shows no token", ch.Name)
				assert.Equal(t, fmt.Sprintf("/rolefsm/election/%s/", ch.Name), ch.Token.Key[:len(ch.Token.Key)-len(lastPart(ch.Token.Key))])
				tokens[ch.Name] = ch.Token.Revision
			} else {
				assert.Nil(t, ch.Token, "%s: a %s shows a token", ch.Name, ch.Role)
			}
		}
	}
	assert.Equal(t, 1.0, c.metric(1, "rolefsm_etcd_requests_total{kind=\"grant\"}"))

	killed := mostLeading(leaders)
	c.signal(killed, syscall.SIGKILL)
	rest := without(all, killed)
	after := c.settle(rest...)
	for ch, id := range after {
		assert.NotEqual(t, killed, id, "%s", ch)
	}
	newTokens := c.tokens(rest...)
	for ch, rev := range newTokens {
		if leaders[ch] == killed {
			assert.Greater(t, rev, tokens[ch], "%s: the new term's token", ch)
		}
	}

	stopped := mostLeading(after)
	p := c.signal(stopped, syscall.SIGTERM)
	require.NoError(t, p.err, "SIGTERM: exit 0")
	last := without(rest, stopped)
	final := c.settle(last...)
	for ch, id := range final {
		assert.Equal(t, last[0], id, "%s", ch)
	}
	assert.Contains(t, tail(p.stderr), "GracefulRelinquish")
}

func lastPart(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

func without(ids []replica.NodeID, x replica.NodeID) []replica.NodeID {
	var out []replica.NodeID
	for _, id := range ids {
		if id != x {
			out = append(out, id)
		}
	}
	return out
}

// tokens returns the revision of every leader's token among ids.
func (c *cluster) tokens(ids ...replica.NodeID) map[string]int64 {
	c.t.Helper()
	out := map[string]int64{}
	for _, id := range ids {
		st, err := c.status(id)
		require.NoError(c.t, err)
		for _, ch := range st.Channels {
			if ch.Token != nil {
				out[ch.Name] = ch.Token.Revision
			}
		}
	}
	return out
}

// TestNodeEtcdUnreachable: etcd down at start is exit 1, naming it, and
// nothing is left running.
func TestNodeEtcdUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	var stdout, stderr bytes.Buffer
	code := node(context.Background(), []string{"-id", "1", "-listen", "127.0.0.1:0", "-channels", "a", "-insecure",
		"-election", "etcd", "-etcd", addr, "-etcd-ttl", "2s"}, &stdout, &stderr)
	assert.Equal(t, exitRejected, code)
	assert.Contains(t, stderr.String(), "rolefsm node: rolefsmetcd: cannot reach etcd at ["+addr+"]")
	assert.Empty(t, stdout.String())
}
