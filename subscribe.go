package rolefsm

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Subscription receives a coordinator's records, committed and
// rejected, on a channel, in the order observers see them. Delivery
// never waits for the reader: a record that finds the channel's buffer
// full is dropped and counted (hashicorp/raft's observers work the same
// way), so a slow reader costs the coordinator nothing but the count,
// and costs the reader the records it missed: Dropped says how many,
// and Coordinator.Lease says where the coordinator is now.
type Subscription struct {
	// C carries the records. It is closed by Close.
	C <-chan Record

	c       *Coordinator
	ch      chan Record
	sink    *sink
	dropped atomic.Uint64

	mu     sync.Mutex // guards closed, and sends against Close
	closed bool
}

// Subscribe returns a subscription with a buffer of size records (at
// least 1). Close it when done.
func (c *Coordinator) Subscribe(size int) *Subscription {
	ch := make(chan Record, max(size, 1))
	s := &Subscription{C: ch, c: c, ch: ch}
	s.sink = &sink{fn: func(_ context.Context, r Record) { s.offer(r) }}
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.obs.Load()
	if o == nil {
		o = &observers{}
		o.sinks.Store(&[]*sink{})
		c.obs.Store(o)
	}
	sinks := append(slices.Clone(*o.sinks.Load()), s.sink)
	o.sinks.Store(&sinks)
	return s
}

// offer hands r to the reader, or drops and counts it.
func (s *Subscription) offer(r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.ch <- r:
	default:
		s.dropped.Add(1)
	}
}

// Dropped returns how many records found the buffer full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C; records still buffered can
// be read. Closing twice does nothing.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.ch)
	s.mu.Unlock()
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.obs.Load()
	sinks := slices.DeleteFunc(slices.Clone(*o.sinks.Load()), func(k *sink) bool { return k == s.sink })
	o.sinks.Store(&sinks)
}

// Wait blocks until cond holds for the coordinator's lease (its role
// and generation), and returns that lease; or until ctx is done, and
// returns ctx's error with the lease last seen. cond is checked at once,
// then after every commit.
//
//	lease, err := c.Wait(ctx, func(l rolefsm.Lease) bool { return l.Role == rolefsm.Leader })
func (c *Coordinator) Wait(ctx context.Context, cond func(Lease) bool) (Lease, error) {
	if ctx == nil {
		return c.Lease(), ErrNilContext
	}
	l := c.Lease()
	if cond(l) {
		return l, nil
	}
	s := c.Subscribe(1) // a wake-up, not the records: a drop loses nothing
	defer s.Close()
	for {
		// Committed since the check above, before the subscription?
		if l = c.Lease(); cond(l) {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return c.Lease(), ctx.Err()
		case <-s.C:
		}
	}
}
