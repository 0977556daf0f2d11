package main

// Tests on real processes: rolefsm node started as child processes of
// the test binary (see asCommand), talking UDP on loopback. They wait
// for the cluster with bounded polls of GET /status (a real network and
// real processes: there is no virtual clock to advance), with generous
// deadlines that are bounds, not timing claims. Every process started
// is stopped by the test's cleanup.

import (
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmtest/nodeproc"
)

// patience bounds every wait on the processes.
const patience = 60 * time.Second

// cluster is nodeproc's process harness, failing the test where it
// returns an error.
type cluster struct {
	*nodeproc.Cluster
	t *testing.T
}

func newCluster(t *testing.T, ids []replica.NodeID, args ...string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	nc, err := nodeproc.New(os.Args[0], t.TempDir(), ids, args...)
	require.NoError(t, err)
	nc.Env = []string{asCommand + "=1"} // the test binary runs as the command (see asCommand)
	nc.Patience = patience
	t.Cleanup(nc.StopAll)
	return &cluster{Cluster: nc, t: t}
}

// freeUDPAddr returns a loopback address with a UDP port free a moment
// ago (the node binds it next).
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	addr, err := nodeproc.FreeUDPAddr()
	require.NoError(t, err)
	return addr
}

// start starts node id and waits for its first stdout line.
func (c *cluster) start(id replica.NodeID) {
	c.t.Helper()
	_, err := c.Start(id)
	require.NoError(c.t, err)
}

// signal sends sig to node id and waits for it to exit.
func (c *cluster) signal(id replica.NodeID, sig syscall.Signal) *nodeproc.Proc {
	c.t.Helper()
	p, err := c.Signal(id, sig)
	require.NoError(c.t, err)
	return p
}

// status reads GET /status of node id, as the command serves it.
func (c *cluster) status(id replica.NodeID) (nodeStatus, error) {
	var st nodeStatus
	err := c.Status(id, &st)
	return st, err
}

func (c *cluster) get(id replica.NodeID, path string) ([]byte, error) { return c.Get(id, path) }

// await polls cond every 20 ms until it holds, failing the test after
// patience.
func (c *cluster) await(what string, cond func() bool) {
	c.t.Helper()
	require.NoError(c.t, c.Await(what, 20*time.Millisecond, func() (bool, error) { return cond(), nil }))
}

func (c *cluster) leaders(ids ...replica.NodeID) (map[string]replica.NodeID, bool) {
	return c.Leaders(ids...)
}

// settle waits until ids agree on a leader per channel, and returns
// them.
func (c *cluster) settle(ids ...replica.NodeID) map[string]replica.NodeID {
	c.t.Helper()
	var got map[string]replica.NodeID
	c.await(fmt.Sprintf("one leader per channel among nodes %v", ids), func() bool {
		var ok bool
		got, ok = c.leaders(ids...)
		return ok
	})
	return got
}

var mostLeading = nodeproc.MostLeading

// tail is the end of a log file, for failure messages.
var tail = nodeproc.Tail

// metrics reads every sample of one scrape of node id's /metrics, by
// series (name and labels); nil if the scrape failed.
func (c *cluster) metrics(id replica.NodeID) map[string]float64 {
	m, err := c.Metrics(id)
	if err != nil {
		return nil
	}
	return m
}

// metric reads one sample's value from node id's /metrics, or -1.
func (c *cluster) metric(id replica.NodeID, series string) float64 {
	if v, ok := c.metrics(id)[series]; ok {
		return v
	}
	return -1
}

// recorder is a UDP relay that keeps a copy of what it forwards: it
// stands between two nodes, as an attacker on the path would.
type recorder struct {
	conn *net.UDPConn
	to   *net.UDPAddr
	mu   sync.Mutex
	seen [][]byte
	done chan struct{}
}

func newRecorder(t *testing.T, to string) *recorder {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	dst, err := net.ResolveUDPAddr("udp", to)
	require.NoError(t, err)
	r := &recorder{conn: conn, to: dst, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 1<<16)
		var client *net.UDPAddr // the last sender that is not dst: answers go back to it
		for {
			n, src, err := conn.ReadFromUDP(buf)
			if err != nil {
				return // closed
			}
			if src.String() == dst.String() {
				if client != nil {
					_, _ = conn.WriteToUDP(buf[:n], client)
				}
				continue
			}
			client = src
			_, _ = conn.WriteToUDP(buf[:n], dst)
			r.mu.Lock()
			r.seen = append(r.seen, slices.Clone(buf[:n]))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-r.done })
	return r
}

func (r *recorder) captured() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}
