package rolefsm

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSubscribeDeliversEveryRecordInOrder(t *testing.T) {
	ctx := context.Background()
	var seen []Record
	c, err := NewCoordinator(WithName("orders"), WithObserver(func(_ context.Context, r Record) { seen = append(seen, r) }))
	require.NoError(t, err)
	s := c.Subscribe(8)
	defer s.Close()
	_, err = c.Fire(ctx, CapabilitySelected)
	require.NoError(t, err)
	_, err = c.Fire(ctx, ElectionWon) // rejected: Replica → Leader
	require.Error(t, err)
	_, err = c.Fire(ctx, MissedHeartbeats)
	require.NoError(t, err)
	got := []Record{<-s.C, <-s.C, <-s.C}
	assert.Equal(t, seen, got, "what the observer saw, in the same order")
	assert.Equal(t, "orders", got[0].Name)
	assert.Error(t, got[1].Err)
	assert.Zero(t, s.Dropped())
}

// TestSlowSubscriberDropsAndCounts: delivery never waits for the
// reader; what finds the buffer full is dropped and counted.
func TestSlowSubscriberDropsAndCounts(t *testing.T) {
	ctx := context.Background()
	c, err := NewCoordinator() // no observer: the subscription brings the machinery
	require.NoError(t, err)
	s := c.Subscribe(0) // a buffer of 1
	for _, sig := range []Signal{CapabilitySelected, MissedHeartbeats, ElectionWon} {
		_, err := c.Fire(ctx, sig)
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(2), s.Dropped())
	first := <-s.C
	assert.Equal(t, Transition{Idle, Replica, CapabilitySelected}, first.Transition)
	assert.Equal(t, Lease{Role: Leader, Generation: 3}, c.Lease(), "the commits went on")

	s.Close()
	s.Close() // twice: nothing
	_, open := <-s.C
	assert.False(t, open, "closed, and empty")
	_, err = c.Fire(ctx, PeerLeaderObserved)
	require.NoError(t, err, "a commit after Close delivers to nobody")
	assert.Equal(t, uint64(2), s.Dropped())
	assert.Empty(t, *c.obs.Load().sinks.Load())
}

func TestWait(t *testing.T) {
	ctx := context.Background()
	c, err := NewCoordinator(WithName("orders"))
	require.NoError(t, err)
	isLeader := func(l Lease) bool { return l.Role == Leader }

	got := make(chan Lease, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		l, err := c.Wait(ctx, isLeader)
		assert.NoError(t, err)
		got <- l
	}()
	<-started
	for _, sig := range []Signal{CapabilitySelected, MissedHeartbeats, ElectionWon} {
		_, err := c.Fire(ctx, sig)
		require.NoError(t, err)
	}
	assert.Equal(t, Lease{Role: Leader, Generation: 3}, <-got)

	// Already true: at once.
	l, err := c.Wait(ctx, isLeader)
	require.NoError(t, err)
	assert.Equal(t, Lease{Role: Leader, Generation: 3}, l)

	// A context that ends first: its error, and the lease last seen.
	done, cancel := context.WithCancel(ctx)
	cancel()
	l, err = c.Wait(done, func(l Lease) bool { return l.Role == Idle })
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, Lease{Role: Leader, Generation: 3}, l)
	//nolint:staticcheck // a nil context on purpose
	_, err = c.Wait(nil, isLeader)
	assert.ErrorIs(t, err, ErrNilContext)
	assert.Empty(t, *c.obs.Load().sinks.Load(), "every Wait removed its subscription")
}

// TestSubscriptionsComeAndGoUnderLoad: subscribing and closing while
// other goroutines commit is safe (run with -race), and every record a
// subscription receives is in commit order.
func TestSubscriptionsComeAndGoUnderLoad(t *testing.T) {
	ctx := context.Background()
	c, err := NewCoordinator()
	require.NoError(t, err)
	stop := make(chan struct{})
	var writers, readers sync.WaitGroup
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				t := cycle[i&3]
				_, _ = c.Transition(ctx, t.To, t.Signal)
			}
		}()
	}
	for w := 0; w < 2; w++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; i < 200; i++ {
				s := c.Subscribe(64)
				var last uint64
				for k := 0; k < 3; k++ {
					r := <-s.C
					if r.Err == nil {
						assert.Greater(t, r.Generation, last, "in commit order")
						last = r.Generation
					}
				}
				s.Close()
			}
		}()
	}
	readers.Wait()
	close(stop)
	writers.Wait()
	assert.Empty(t, *c.obs.Load().sinks.Load())
}
