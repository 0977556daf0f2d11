package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// cluster is n nodes, each on a MemNetwork with a Driver running in a
// goroutine of its own, holding channel "a" over all of them.
type cluster struct {
	t       *testing.T
	net     *MemNetwork
	drivers []*Driver
	trs     []*MemTransport
	stop    []context.CancelFunc
	done    sync.WaitGroup

	mu     sync.Mutex
	events []string // "n2 Candidate → Leader (ElectionWon)", in commit order per node
}

func newCluster(t *testing.T, n int, hb policy.Heartbeat) *cluster {
	c := &cluster{t: t, net: NewMemNetwork()}
	ids := make([]NodeID, n)
	for i := range ids {
		ids[i] = NodeID(i + 1)
	}
	for _, id := range ids {
		node, err := NewNode(Config{ID: id, Heartbeat: hb}, time.Now())
		require.NoError(t, err)
		tr, err := c.net.Join(id, 0)
		require.NoError(t, err)
		obs := func(_ context.Context, rec rolefsm.Record) {
			c.mu.Lock()
			c.events = append(c.events, fmt.Sprintf("n%d ", id)+rec.Transition.String())
			c.mu.Unlock()
		}
		require.NoError(t, node.Open(context.Background(), time.Now(), ChannelConfig{
			Name: "a", Replicas: ids, Options: []rolefsm.Option{rolefsm.WithObserver(obs)},
		}))
		c.drivers = append(c.drivers, NewDriver(node, tr, DriverOptions{}))
		c.trs = append(c.trs, tr)
		c.stop = append(c.stop, nil)
	}
	for i := range c.drivers {
		c.start(i)
	}
	return c
}

func (c *cluster) start(i int) {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop[i] = cancel
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		assert.NoError(c.t, c.drivers[i].Run(ctx))
	}()
}

// close stops every driver and waits for them.
func (c *cluster) close() {
	for _, s := range c.stop {
		s()
	}
	c.done.Wait()
	for _, tr := range c.trs {
		_ = tr.Close()
	}
}

func (c *cluster) status(id NodeID) Status {
	var st Status
	require.NoError(c.t, c.drivers[id-1].Do(func(n *Node, _ time.Time) error {
		var err error
		st, err = n.Status("a")
		return err
	}))
	return st
}

func (c *cluster) roles() []rolefsm.Role {
	var rs []rolefsm.Role
	for i := range c.drivers {
		rs = append(rs, c.status(NodeID(i+1)).Role)
	}
	return rs
}

func (c *cluster) leaders() []NodeID {
	var ls []NodeID
	for i, r := range c.roles() {
		if r == rolefsm.Leader {
			ls = append(ls, NodeID(i+1))
		}
	}
	return ls
}

func hb100(t *testing.T) policy.Heartbeat {
	hb, err := policy.NewHeartbeat(100*time.Millisecond, 3)
	require.NoError(t, err)
	return hb
}

// TestDriverFailover runs three real drivers on a fake clock: they
// elect one leader within the heartbeat timeout plus a tick; a leader
// cut off from the others is replaced within the timeout plus an
// election round, and on the heal the deposed side concedes to the
// leader with the longer log.
func TestDriverFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, hb100(t))
		defer c.close()

		// Nobody has been heard claiming office: everyone stands at
		// 300 ms and elects the lowest id of equal tails on the next
		// tick (10 ms).
		time.Sleep(299 * time.Millisecond)
		synctest.Wait()
		assert.Empty(t, c.leaders())
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, []NodeID{1}, c.leaders())
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, []rolefsm.Role{rolefsm.Leader, rolefsm.Replica, rolefsm.Replica}, c.roles())
		assert.Equal(t, NodeID(1), c.status(2).Leader)
		assert.Equal(t, NodeID(1), c.status(3).Leader)
		oldLease := c.status(1).Lease

		c.net.Partition(1)
		cut := time.Now()
		for len(c.leaders()) < 2 {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			require.Less(t, time.Since(cut), time.Second, "no failover")
		}
		took := time.Since(cut)
		// The timeout (300 ms) from the last claim heard (at most one
		// interval before the cut), then one tick to elect.
		assert.LessOrEqual(t, took, 300*time.Millisecond+2*10*time.Millisecond)
		assert.Greater(t, took, 200*time.Millisecond)
		assert.Equal(t, []NodeID{1, 2}, c.leaders(), "n1 keeps office alone: there is no quorum")

		// The new leader appends; then the network heals.
		require.NoError(t, c.drivers[1].Do(func(n *Node, _ time.Time) error { return n.SetTail("a", 1) }))
		c.net.Heal()
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, []NodeID{2}, c.leaders())
		assert.Equal(t, NodeID(2), c.status(1).Leader)
		st := c.status(1)
		assert.Equal(t, oldLease, st.Lease)
		require.NoError(t, c.drivers[0].Do(func(n *Node, _ time.Time) error {
			assert.False(t, n.Coordinator("a").Holds(oldLease), "the deposed leader's lease no longer holds")
			return nil
		}))
		c.mu.Lock()
		assert.Contains(t, c.events, "n1 Leader → Replica (PeerLeaderObserved)")
		c.mu.Unlock()
	})
}

// TestDriverLeaveFailsOverAtOnce: a leader that leaves gracefully says
// goodbye, and the others elect a new leader within two ticks, not a
// heartbeat timeout.
func TestDriverLeaveFailsOverAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, hb100(t))
		defer c.close()
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, []NodeID{1}, c.leaders())

		left := time.Now()
		require.NoError(t, c.drivers[0].Leave(context.Background()))
		for len(c.leaders()) == 0 || c.leaders()[0] == 1 {
			time.Sleep(time.Millisecond)
			synctest.Wait()
			require.Less(t, time.Since(left), time.Second)
		}
		assert.LessOrEqual(t, time.Since(left), 2*10*time.Millisecond+time.Millisecond, "two ticks: stand, then elect")
		assert.Equal(t, []NodeID{2}, c.leaders())
		assert.Equal(t, rolefsm.Idle, c.status(1).Role)
		c.mu.Lock()
		assert.Contains(t, c.events, "n1 Leader → Idle (GracefulRelinquish)")
		c.mu.Unlock()
	})
}

// TestDriverStopsWithItsContext: Run returns when its context ends, and
// leaves no goroutine behind (goleak checks the package).
func TestDriverStopsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork()
		tr, err := net.Join(1, 0)
		require.NoError(t, err)
		n := newNode(t, 1)
		d := NewDriver(n, tr, DriverOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- d.Run(ctx) }()
		synctest.Wait()
		assert.ErrorIs(t, d.Run(ctx), ErrRunning)
		cancel()
		assert.NoError(t, <-errc)
		require.NoError(t, tr.Close())
		// A goodbye through a closed transport reports why it failed.
		require.NoError(t, n.Open(context.Background(), time.Now(), ChannelConfig{Name: "a", Replicas: []NodeID{1, 2}}))
		assert.ErrorIs(t, d.Leave(context.Background()), ErrTransportClosed)
		assert.ErrorIs(t, tr.Close(), ErrTransportClosed)
		assert.ErrorIs(t, tr.Send(ctx, 2, Batch{}), ErrTransportClosed)

		// A transport that closes under a running driver stops it.
		tr, err = net.Join(1, 0)
		require.NoError(t, err)
		d = NewDriver(n, tr, DriverOptions{})
		go func() { errc <- d.Run(context.Background()) }()
		synctest.Wait()
		require.NoError(t, tr.Close())
		assert.ErrorIs(t, <-errc, ErrTransportClosed)
	})
}

// TestDriverReportsRefusedBatches: what the node refuses reaches
// OnError; the driver goes on.
func TestDriverReportsRefusedBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork()
		tr1, err := net.Join(1, 0)
		require.NoError(t, err)
		tr9, err := net.Join(9, 0)
		require.NoError(t, err)
		n := newNode(t, 1)
		require.NoError(t, n.Open(context.Background(), time.Now(), ChannelConfig{Name: "a", Replicas: []NodeID{1, 2}}))
		var errs []error
		d := NewDriver(n, tr1, DriverOptions{OnError: func(err error) { errs = append(errs, err) }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = d.Run(ctx); close(done) }()

		require.NoError(t, tr9.Send(ctx, 1, Batch{From: 9, Entries: []Entry{{Channel: "a", Role: rolefsm.Leader}}}))
		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.NoError(t, d.Do(func(*Node, time.Time) error {
			require.Len(t, errs, 1)
			assert.ErrorIs(t, errs[0], ErrUnknownPeer)
			return nil
		}))
		// Its heartbeats to n2, who is not on the network, are dropped.
		assert.Positive(t, tr1.Stats().Dropped)
		assert.Zero(t, tr1.Stats().Delivered)
		sentinel := errors.New("boom")
		assert.Equal(t, sentinel, d.Do(func(*Node, time.Time) error { return sentinel }))
		cancel()
		<-done
		require.NoError(t, tr1.Close())
		require.NoError(t, tr9.Close())
	})
}

// TestDriverPassesTheTransportsRTT: an RTT measured by the transport
// reaches the node.
func TestDriverPassesTheTransportsRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &chanTransport{inbox: make(chan Inbound, 1)}
		n := newNode(t, 1)
		require.NoError(t, n.Open(context.Background(), time.Now(), ChannelConfig{Name: "a", Replicas: []NodeID{1, 2}}))
		var errs []error
		d := NewDriver(n, tr, DriverOptions{TickInterval: time.Second, OnError: func(err error) { errs = append(errs, err) }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = d.Run(ctx); close(done) }()
		tr.inbox <- Inbound{Batch: Batch{From: 2}, RTT: 7 * time.Millisecond, HasRTT: true}
		tr.inbox <- Inbound{Batch: Batch{From: 9}, RTT: time.Millisecond, HasRTT: true}
		synctest.Wait()
		require.NoError(t, d.Do(func(n *Node, _ time.Time) error {
			p := n.Peers()[0]
			assert.True(t, p.HasRTT)
			assert.Equal(t, 7*time.Millisecond, p.RTT)
			assert.Equal(t, uint64(1), p.Batches)
			require.Len(t, errs, 2, "the RTT and the batch of an unknown node")
			assert.EqualError(t, errs[0], "replica: unknown peer: node 9")
			assert.EqualError(t, errs[1], "replica: unknown peer: node 9")
			return nil
		}))
		cancel()
		<-done
	})
}

type chanTransport struct{ inbox chan Inbound }

func (c *chanTransport) Send(context.Context, NodeID, Batch) error { return nil }
func (c *chanTransport) Inbox() <-chan Inbound                     { return c.inbox }
func (c *chanTransport) Close() error                              { return nil }

func TestMemNetwork(t *testing.T) {
	net := NewMemNetwork()
	_, err := net.Join(0, 0)
	require.Error(t, err)
	d, err := net.Join(7, 0)
	require.NoError(t, err)
	assert.Equal(t, DefaultInboxSize, cap(d.Inbox()))
	require.NoError(t, d.Close())
	a, err := net.Join(1, 1)
	require.NoError(t, err)
	_, err = net.Join(1, 0)
	require.Error(t, err, "already on the network")
	b, err := net.Join(2, 1)
	require.NoError(t, err)
	ctx := context.Background()

	entries := []Entry{{Channel: "x", Role: rolefsm.Leader, Tail: 1}}
	require.NoError(t, a.Send(ctx, 2, Batch{From: 1, Entries: entries}))
	entries[0].Tail = 99 // the sender reuses its buffer
	require.NoError(t, a.Send(ctx, 2, Batch{From: 1, Entries: entries}), "inbox full: dropped")
	in := <-b.Inbox()
	assert.Equal(t, uint64(1), in.Batch.Entries[0].Tail, "delivered a copy")
	assert.Equal(t, MemStats{Sent: 2, Delivered: 1, Dropped: 1}, a.Stats())

	net.Disconnect(2, 1)
	require.NoError(t, a.Send(ctx, 2, Batch{From: 1}))
	assert.Empty(t, b.Inbox())
	net.Connect(1, 2)
	require.NoError(t, a.Send(ctx, 2, Batch{From: 1}))
	assert.Len(t, b.Inbox(), 1)
	<-b.Inbox()

	c, err := net.Join(3, 0)
	require.NoError(t, err)
	net.Partition(1)
	require.NoError(t, a.Send(ctx, 2, Batch{From: 1}))
	require.NoError(t, c.Send(ctx, 1, Batch{From: 3}))
	require.NoError(t, b.Send(ctx, 3, Batch{From: 2}))
	assert.Empty(t, b.Inbox())
	assert.Empty(t, a.Inbox())
	assert.Len(t, c.Inbox(), 1, "the majority side still talks")
	net.Heal()
	require.NoError(t, a.Send(ctx, 2, Batch{From: 1}))
	assert.Len(t, b.Inbox(), 1)

	require.NoError(t, b.Close())
	require.NoError(t, a.Send(ctx, 2, Batch{From: 1}), "to a closed node: dropped")
	_, ok := <-b.Inbox()
	assert.True(t, ok, "what was delivered before the close can still be read")
	_, ok = <-b.Inbox()
	assert.False(t, ok)
	b, err = net.Join(2, 0)
	require.NoError(t, err, "a closed node may join again")
	for _, tr := range []*MemTransport{a, b, c} {
		require.NoError(t, tr.Close())
	}
}
