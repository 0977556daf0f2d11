package udpproxy

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rig is two nodes' sockets and a proxy between them, on a clock the
// test moves.
type rig struct {
	p       *Proxy
	a, b    *net.UDPConn
	mu      sync.Mutex
	now     time.Time
	decided chan struct{}
}

func newRig(t *testing.T) *rig {
	r := &rig{a: listen(t), b: listen(t), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		decided: make(chan struct{}, 2*MaxInFlight)}
	p, err := New(Config{Seed: 1, Now: r.clock, decided: func() { r.decided <- struct{}{} }, Nodes: map[replica.NodeID]string{
		1: r.a.LocalAddr().String(), 2: r.b.LocalAddr().String()}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	r.p = p
	return r
}

func (r *rig) clock() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

// send writes one datagram from c to the front that reaches to, and
// waits until the proxy has decided its fate (a stranger's too).
func (r *rig) send(t *testing.T, c *net.UDPConn, from, to replica.NodeID, msg string) {
	t.Helper()
	dst, err := net.ResolveUDPAddr("udp", r.p.Addr(from, to))
	require.NoError(t, err)
	_, err = c.WriteToUDP([]byte(msg), dst)
	require.NoError(t, err)
	select {
	case <-r.decided:
	case <-time.After(10 * time.Second): // a bound, not a timing claim
		t.Fatal("the proxy never read it")
	}
}

// recv reads one datagram, and where it came from.
func recv(t *testing.T, c *net.UDPConn) (string, string) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second))) // a bound, not a timing claim
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDP(buf)
	require.NoError(t, err)
	return string(buf[:n]), from.String()
}

// TestRelaysBothWays: each node reaches the other through its front,
// and sees it come from the address it sends to, so a reply goes back
// through the proxy.
func TestRelaysBothWays(t *testing.T) {
	r := newRig(t)
	r.send(t, r.a, 1, 2, "ping")
	msg, from := recv(t, r.b)
	assert.Equal(t, "ping", msg)
	assert.Equal(t, r.p.Addr(2, 1), from, "node 2 sees node 1 at the front it sends to")
	r.send(t, r.b, 2, 1, "pong")
	msg, from = recv(t, r.a)
	assert.Equal(t, "pong", msg)
	assert.Equal(t, r.p.Addr(1, 2), from)
	assert.Equal(t, Stats{Relayed: 1}, r.p.Stats(1, 2))
	assert.Equal(t, "", r.p.Addr(1, 3), "no node 3")
}

// TestOneWayCutAndStrangers: a cut drops one direction only; and a
// datagram to a front from anyone but the node it serves is dropped.
func TestOneWayCutAndStrangers(t *testing.T) {
	r := newRig(t)
	require.NoError(t, r.p.Set(1, 2, Fault{Cut: true}))
	stranger := listen(t)
	r.send(t, stranger, 1, 2, "forged")
	r.send(t, r.a, 1, 2, "lost")
	r.send(t, r.b, 2, 1, "through")
	msg, _ := recv(t, r.a)
	assert.Equal(t, "through", msg)
	require.NoError(t, r.p.Set(1, 2, Fault{}))
	r.send(t, r.a, 1, 2, "healed")
	msg, _ = recv(t, r.b)
	assert.Equal(t, "healed", msg, "neither the cut datagram nor the stranger's came first")
	assert.Equal(t, Stats{Relayed: 1, Cut: 1}, r.p.Stats(1, 2))
}

// TestLoss drops about the share asked, and counts every datagram.
func TestLoss(t *testing.T) {
	r := newRig(t)
	require.NoError(t, r.p.Set(1, 2, Fault{Loss: 0.5}))
	const n = 200
	for range n {
		r.send(t, r.a, 1, 2, "x")
	}
	require.NoError(t, r.p.Set(1, 2, Fault{}))
	r.send(t, r.a, 1, 2, "end")
	got := 0
	for {
		msg, _ := recv(t, r.b)
		if msg == "end" {
			break
		}
		got++
	}
	st := r.p.Stats(1, 2)
	assert.Equal(t, uint64(n+1), st.Relayed+st.Lost)
	assert.Equal(t, uint64(got+1), st.Relayed)
	assert.Positive(t, st.Lost)
	assert.Positive(t, got, "a share, not all")
}

// TestFlapping cuts for Down, then passes for Up, from when it was set,
// on the proxy's clock.
func TestFlapping(t *testing.T) {
	r := newRig(t)
	require.NoError(t, r.p.Set(1, 2, Fault{Down: 200 * time.Millisecond, Up: 300 * time.Millisecond}))
	r.send(t, r.a, 1, 2, "down")
	r.advance(250 * time.Millisecond)
	r.send(t, r.a, 1, 2, "up")
	msg, _ := recv(t, r.b)
	assert.Equal(t, "up", msg)
	r.advance(300 * time.Millisecond) // 550 ms: down again
	r.send(t, r.a, 1, 2, "down again")
	r.advance(200 * time.Millisecond) // 750 ms: up
	r.send(t, r.a, 1, 2, "up again")
	msg, _ = recv(t, r.b)
	assert.Equal(t, "up again", msg)
	assert.Equal(t, Stats{Relayed: 2, Cut: 2}, r.p.Stats(1, 2))
}

// TestDelayIsBounded: datagrams held in delays past MaxInFlight are
// dropped and counted, and Close drops what is held and returns with no
// goroutine left (TestMain checks).
func TestDelayIsBounded(t *testing.T) {
	r := newRig(t)
	require.NoError(t, r.p.Set(1, 2, Fault{Delay: MaxDelay}))
	for range MaxInFlight + 10 {
		r.send(t, r.a, 1, 2, "held")
	}
	require.NoError(t, r.p.Set(1, 2, Fault{}))
	r.send(t, r.a, 1, 2, "now")
	msg, _ := recv(t, r.b)
	assert.Equal(t, "now", msg, "a delayed datagram comes after one sent later")
	st := r.p.Stats(1, 2)
	assert.Equal(t, uint64(10), st.Overflow)
	assert.Equal(t, uint64(1), st.Relayed)
}

// TestDelay: a delayed datagram arrives, after one sent later without.
func TestDelay(t *testing.T) {
	r := newRig(t)
	require.NoError(t, r.p.Set(1, 2, Fault{Delay: 200 * time.Millisecond, Jitter: 10 * time.Millisecond}))
	r.send(t, r.a, 1, 2, "late")
	require.NoError(t, r.p.Set(1, 2, Fault{}))
	r.send(t, r.a, 1, 2, "early")
	first, _ := recv(t, r.b)
	second, _ := recv(t, r.b)
	assert.Equal(t, []string{"early", "late"}, []string{first, second})
}

func TestBadConfig(t *testing.T) {
	a := listen(t).LocalAddr().String()
	for _, tc := range []struct {
		nodes map[replica.NodeID]string
		msg   string
	}{
		{map[replica.NodeID]string{1: a}, "1 nodes, want at least 2"},
		{map[replica.NodeID]string{1: a, 2: "10.0.0.1:9"}, "node 2 at 10.0.0.1:9: loopback addresses only"},
		{map[replica.NodeID]string{1: a, 2: "nowhere"}, "node 2:"},
	} {
		_, err := New(Config{Nodes: tc.nodes})
		require.ErrorIs(t, err, ErrBadConfig)
		assert.Contains(t, err.Error(), tc.msg)
	}
	r := newRig(t)
	for _, tc := range []struct {
		f   Fault
		msg string
	}{
		{Fault{Loss: 1.5}, "loss 1.5, want 0 to 1"},
		{Fault{Loss: -0.1}, "loss -0.1"},
		{Fault{Delay: -1}, "delay -1ns"},
		{Fault{Delay: MaxDelay, Jitter: 1}, "both at most 10s"},
		{Fault{Down: time.Second}, "give both"},
	} {
		err := r.p.Set(1, 2, tc.f)
		require.ErrorIs(t, err, ErrBadConfig, tc.msg)
		assert.Contains(t, err.Error(), tc.msg)
	}
	require.ErrorIs(t, r.p.Set(1, 3, Fault{}), ErrBadConfig)
}
