package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// bound is how long a test waits on real sockets and clocks: a bound,
// not a timing claim.
const bound = 20 * time.Second

type term struct {
	node    replica.NodeID
	channel string
	lease   rolefsm.Lease
}

func freeAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().String()
}

// configs are n nodes with keys on loopback, each reporting the terms
// it starts and ends on started and ended.
func configs(t *testing.T, n int, started, ended chan<- term) []Config {
	t.Helper()
	hb, err := policy.NewHeartbeat(100*time.Millisecond, 3)
	require.NoError(t, err)
	keys := map[replica.NodeID]udp.PrivateKey{}
	addrs := map[replica.NodeID]string{}
	for id := replica.NodeID(1); int(id) <= n; id++ {
		keys[id], err = udp.GenerateKey()
		require.NoError(t, err)
		addrs[id] = freeAddr(t)
	}
	var cfgs []Config
	for id := replica.NodeID(1); int(id) <= n; id++ {
		cfg := Config{ID: id, Listen: addrs[id], Key: keys[id], Channels: []string{"orders", "payments"},
			Heartbeat: hb, Logger: quiet, Peers: map[replica.NodeID]udp.Peer{}}
		for p := replica.NodeID(1); int(p) <= n; p++ {
			if p != id {
				cfg.Peers[p] = udp.Peer{Addr: addrs[p], Keys: []udp.PublicKey{keys[p].Public()}}
			}
		}
		cfg.OnStartedLeading = func(ctx context.Context, channel string, lease rolefsm.Lease) {
			started <- term{id, channel, lease}
			<-ctx.Done()
			ended <- term{id, channel, lease}
		}
		cfgs = append(cfgs, cfg)
	}
	return cfgs
}

func next(t *testing.T, ch <-chan term, what string) term {
	t.Helper()
	select {
	case tm := <-ch:
		return tm
	case <-time.After(bound):
		t.Fatalf("no %s", what)
	}
	return term{}
}

// TestServersElectFailOverAndEndTerms: three servers elect a leader per
// channel, whose OnStartedLeading runs with the term's lease; when that
// server's Run ends, its terms' contexts are cancelled (their calls
// return before Run does) and another server takes office.
func TestServersElectFailOverAndEndTerms(t *testing.T) {
	started, ended := make(chan term, 16), make(chan term, 16)
	cfgs := configs(t, 3, started, ended)
	logs := &syncWriter{}
	for i := range cfgs {
		cfgs[i].Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	var servers []*Server
	stops := map[replica.NodeID]context.CancelFunc{}
	done := map[replica.NodeID]chan error{}
	for _, cfg := range cfgs {
		s, err := New(cfg)
		require.NoError(t, err)
		servers = append(servers, s)
		ctx, stop := context.WithCancel(context.Background())
		end := make(chan error, 1)
		stops[cfg.ID], done[cfg.ID] = stop, end
		go func() { end <- s.Run(ctx) }()
	}
	defer func() {
		for id, stop := range stops {
			stop()
			assert.NoError(t, <-done[id])
		}
	}()

	leaders := map[string]term{}
	for len(leaders) < 2 {
		tm := next(t, started, "leader")
		require.NotContains(t, leaders, tm.channel, "two terms at once on %s", tm.channel)
		leaders[tm.channel] = tm
		assert.Equal(t, rolefsm.Leader, tm.lease.Role)
		assert.True(t, servers[tm.node-1].Coordinator(tm.channel).Holds(tm.lease), "the term's lease holds")
	}
	first := leaders["orders"]
	await(t, "every server ready", func() bool {
		for _, s := range servers {
			if s.Ready() != nil {
				return false
			}
		}
		return true
	})
	st := servers[first.node-1].Status()
	require.Len(t, st.Peers, 2)
	for _, p := range st.Peers {
		assert.True(t, p.Heard && p.Healthy && p.Transport.Session, "peer %d: %+v", p.ID, p)
		assert.Equal(t, p.ID, p.Transport.ID)
	}
	assert.Equal(t, first.node, st.ID)
	assert.Equal(t, servers[first.node-1].Transport().PublicKey(), st.PublicKey)
	require.Len(t, st.Channels, 2)
	assert.Equal(t, "orders", st.Channels[0].Channel)
	assert.Equal(t, rolefsm.Leader, st.Channels[0].Role)

	// The leader of orders stops: its terms end before Run returns, and
	// the others elect again.
	stops[first.node]()
	require.NoError(t, <-done[first.node], "a graceful leave")
	delete(stops, first.node)
	var endedHere []string
	for {
		select {
		case tm := <-ended:
			require.Equal(t, first.node, tm.node)
			endedHere = append(endedHere, tm.channel)
			continue
		default:
		}
		break
	}
	assert.Contains(t, endedHere, "orders", "the term's context was cancelled before Run returned")
	assert.NotContains(t, logs.String(), "took office without ever hearing a peer", "its peers were heard")
	again := next(t, started, "a new leader of a channel the stopped server led")
	assert.NotEqual(t, first.node, again.node)
	for _, s := range servers {
		if s.cfg.ID == first.node {
			continue
		}
		st := s.Transport().Stats()
		// The stopped node's last datagrams may arrive under a session
		// the other side just replaced: nothing else is dropped
		// between honest nodes.
		st.Dropped[udp.UnknownSession] = 0
		assert.Zero(t, st.Dropped, "node %d dropped datagrams of honest nodes", s.cfg.ID)
		assert.Positive(t, st.DatagramsReceived)
	}
}

// await polls cond every 10 ms for up to bound.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(bound); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestNotReadyAlone: a server whose one peer never answers elects
// itself but is not ready, and its status says why: the peer was never
// heard, no session, its handshakes unanswered. A backend's readiness
// counts too.
func TestNotReadyAlone(t *testing.T) {
	cfg := configs(t, 2, nil, nil)[0]
	cfg.OnStartedLeading = nil
	logs := &syncWriter{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := New(cfg)
	require.NoError(t, err)
	err = s.Ready()
	require.ErrorIs(t, err, ErrNotReady)
	assert.EqualError(t, err, "server: not ready: no peer healthy: none heard lately (of 1); no leader on orders, payments")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	await(t, "it leads both channels alone", func() bool {
		st := s.Status()
		return st.Channels[0].Role == rolefsm.Leader && st.Channels[1].Role == rolefsm.Leader && st.Peers[0].Transport.Handshakes > 1
	})
	assert.EqualError(t, s.Ready(), "server: not ready: no peer healthy: none heard lately (of 1)")
	// It said so, once for both channels (one warning a minute).
	assert.Equal(t, 1, strings.Count(logs.String(), "took office without ever hearing a peer"), logs.String())
	p := s.Status().Peers[0]
	assert.False(t, p.Heard)
	assert.False(t, p.Transport.Session)
	assert.Equal(t, cfg.Peers[2].Addr, p.Transport.Addr)
	stop()
	require.NoError(t, <-done)

	cfg = configs(t, 1, nil, nil)[0]
	cfg.OnStartedLeading = nil
	cfg.Election = func(*replica.Driver) (Election, error) { return readyElection{errors.New("no etcd session")}, nil }
	s, err = New(cfg)
	require.NoError(t, err)
	assert.EqualError(t, s.Ready(), "server: not ready: no leader on orders, payments; no etcd session")
	require.NoError(t, s.Close())
}

// syncWriter serializes writes to w (the logger writes from the
// driver's goroutine while the test reads).
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readyElection is a backend that reports readiness.
type readyElection struct{ err error }

func (readyElection) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (readyElection) Leave(context.Context) error   { return nil }
func (r readyElection) Ready() error                { return r.err }

// fakeElection records what the server asks of it.
type fakeElection struct {
	runs, leaves chan struct{}
	runErr       error
}

func (f *fakeElection) Run(ctx context.Context) error {
	f.runs <- struct{}{}
	if f.runErr != nil {
		return f.runErr
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeElection) Leave(context.Context) error {
	f.leaves <- struct{}{}
	return nil
}

// TestRunOrdersAnExternalElection: with a backend the node runs
// External, the backend runs beside the driver, its Leave is the
// goodbye when Run's context ends, and an error of the backend's stops
// the node without a goodbye and is what Run returns.
func TestRunOrdersAnExternalElection(t *testing.T) {
	cfg := configs(t, 1, nil, nil)[0]
	cfg.OnStartedLeading = nil
	f := &fakeElection{runs: make(chan struct{}, 1), leaves: make(chan struct{}, 1)}
	var got *replica.Driver
	cfg.Election = func(d *replica.Driver) (Election, error) { got = d; return f, nil }
	s, err := New(cfg)
	require.NoError(t, err)
	assert.Same(t, s.Driver(), got)
	require.NoError(t, s.Driver().Do(func(n *replica.Node, _ time.Time) error {
		// An external node never stands on its own: Stand is the
		// backend's, and it is open to it.
		return n.Stand(context.Background(), time.Now(), "orders")
	}))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-f.runs
	stop()
	require.NoError(t, <-done)
	assert.Len(t, f.leaves, 1, "the backend's Leave was the goodbye")
	require.ErrorIs(t, s.Run(context.Background()), replica.ErrRunning)

	cfg = configs(t, 1, nil, nil)[0]
	cfg.OnStartedLeading = nil
	broken := errors.New("etcd went away")
	f = &fakeElection{runs: make(chan struct{}, 1), leaves: make(chan struct{}, 1), runErr: broken}
	cfg.Election = func(*replica.Driver) (Election, error) { return f, nil }
	s, err = New(cfg)
	require.NoError(t, err)
	require.ErrorIs(t, s.Run(context.Background()), broken)
	assert.Empty(t, f.leaves, "no goodbye after a failure")
}

func TestNewRefusesAndCloses(t *testing.T) {
	cfg := configs(t, 1, nil, nil)[0]
	cfg.OnStartedLeading = nil
	for _, tc := range []struct {
		edit func(*Config)
		msg  string
	}{
		{func(c *Config) { c.Channels = nil }, "server: bad configuration: no channel"},
		{func(c *Config) { c.Channels = []string{"a", ""} }, "server: bad configuration: an empty channel name"},
		{func(c *Config) { c.Key = udp.PrivateKey{} }, "no key"},
		{func(c *Config) { c.Channels = []string{string(make([]byte, 300))} }, "a channel name of 300 bytes, and the transport carries at most 255"},
		{func(c *Config) {
			c.Election = func(*replica.Driver) (Election, error) { return nil, errors.New("no etcd") }
		}, "no etcd"},
	} {
		c := cfg
		tc.edit(&c)
		_, err := New(c)
		require.ErrorContains(t, err, tc.msg)
	}
	// Each refused New closed its socket: the address is free again.
	s, err := New(cfg)
	require.NoError(t, err, "the address was released by the refused News")
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Close(), replica.ErrRunning)
}
