package rolefsm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
)

// recorder is an observer that keeps every record it is given.
type recorder struct {
	mu   sync.Mutex
	recs []Record
}

func (r *recorder) observe(_ context.Context, rec Record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

func (r *recorder) records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recs...)
}

// commits returns the committed records only.
func (r *recorder) commits() []Record {
	var out []Record
	for _, rec := range r.records() {
		if rec.Err == nil {
			out = append(out, rec)
		}
	}
	return out
}

type CoordinatorSuite struct {
	suite.Suite
	ctx context.Context
}

func TestCoordinator(t *testing.T) { suite.Run(t, new(CoordinatorSuite)) }

func (s *CoordinatorSuite) SetupTest() { s.ctx = context.Background() }

func (s *CoordinatorSuite) newCoordinator(opts ...Option) *Coordinator {
	c, err := NewCoordinator(opts...)
	s.Require().NoError(err)
	return c
}

func (s *CoordinatorSuite) TestStartsIdleAtGenerationZero() {
	c := s.newCoordinator()
	s.Equal(Idle, c.Role())
	st := c.Stats()
	s.Equal(Stats{Role: Idle, Transitions: map[Transition]uint64{}}, st)
}

func (s *CoordinatorSuite) TestScriptedLifecycle() {
	rec := &recorder{}
	c := s.newCoordinator(WithName("orders"), WithObserver(rec.observe))
	script := []Transition{
		{Idle, Replica, CapabilitySelected},
		{Replica, Candidate, MissedHeartbeats},
		{Candidate, Replica, ElectionLost},
		{Replica, Candidate, MissedHeartbeats},
		{Candidate, Leader, ElectionWon},
		{Leader, Replica, PeerLeaderObserved},
		{Replica, Candidate, MissedHeartbeats},
		{Candidate, Leader, ElectionWon},
		{Leader, Idle, LeaderDiskPressureWithdraw},
		{Idle, Replica, CapabilitySelected},
		{Replica, Idle, DiskPressureWithdraw},
		{Idle, Replica, CapabilitySelected},
		{Replica, Candidate, MissedHeartbeats},
		{Candidate, Idle, CandidateDiskPressureWithdraw},
		{Idle, Replica, CapabilitySelected},
		{Replica, Candidate, MissedHeartbeats},
		{Candidate, Leader, ElectionWon},
		{Leader, Idle, GracefulRelinquish},
		{Idle, Replica, CapabilitySelected},
		{Replica, Idle, ChannelClose},
	}
	for i, want := range script {
		got, err := c.Transition(s.ctx, want.To, want.Signal)
		s.Require().NoError(err, "step %d", i)
		s.Equal(want, got)
		s.Equal(want.To, c.Role())
	}
	st := c.Stats()
	s.Equal("orders", st.Name)
	s.Equal(Idle, st.Role)
	s.EqualValues(len(script), st.Generation)
	s.EqualValues(3, st.LeaderChanges)
	s.EqualValues(5, st.ElectionThrash)
	s.Zero(st.InvalidPairs)
	s.Zero(st.SignalMismatches)
	s.Equal(map[Transition]uint64{
		{Idle, Replica, CapabilitySelected}:              5,
		{Replica, Candidate, MissedHeartbeats}:           5,
		{Candidate, Replica, ElectionLost}:               1,
		{Candidate, Leader, ElectionWon}:                 3,
		{Leader, Replica, PeerLeaderObserved}:            1,
		{Leader, Idle, LeaderDiskPressureWithdraw}:       1,
		{Replica, Idle, DiskPressureWithdraw}:            1,
		{Candidate, Idle, CandidateDiskPressureWithdraw}: 1,
		{Leader, Idle, GracefulRelinquish}:               1,
		{Replica, Idle, ChannelClose}:                    1,
	}, st.Transitions)

	commits := rec.commits()
	s.Require().Len(commits, len(script))
	for i, r := range commits {
		s.Equal(script[i], r.Transition)
		s.EqualValues(i+1, r.Generation)
		s.False(r.At.IsZero())
	}
}

func (s *CoordinatorSuite) TestFireDerivesTheDestination() {
	c := s.newCoordinator()
	for _, step := range []struct {
		sig  Signal
		want Transition
	}{
		{CapabilitySelected, Transition{Idle, Replica, CapabilitySelected}},
		{MissedHeartbeats, Transition{Replica, Candidate, MissedHeartbeats}},
		{ElectionWon, Transition{Candidate, Leader, ElectionWon}},
		{PeerLeaderObserved, Transition{Leader, Replica, PeerLeaderObserved}},
		{ChannelClose, Transition{Replica, Idle, ChannelClose}},
	} {
		got, err := c.Fire(s.ctx, step.sig)
		s.Require().NoError(err)
		s.Equal(step.want, got)
	}
	// From Idle, ElectionWon targets Leader: an invalid pair.
	_, err := c.Fire(s.ctx, ElectionWon)
	s.ErrorIs(err, ErrInvalidPair)
	for _, sig := range []Signal{0, 11, 255} {
		_, err := c.Fire(s.ctx, sig)
		s.ErrorIs(err, ErrUnknownSignal)
	}
	st := c.Stats()
	s.EqualValues(5, st.Generation)
	s.EqualValues(1, st.InvalidPairs, "unknown signals to Fire are not counted as attempts")
}

func (s *CoordinatorSuite) TestRejectionChangesOnlyRejectionCounters() {
	rec := &recorder{}
	c := s.newCoordinator(WithInitialRole(Replica), WithObserver(rec.observe))
	before := c.Stats()

	_, err := c.Transition(s.ctx, Leader, ElectionWon)
	var ip *InvalidPairError
	s.Require().ErrorAs(err, &ip)
	s.Equal(InvalidPairError{From: Replica, To: Leader}, *ip)

	_, err = c.Transition(s.ctx, Idle, GracefulRelinquish)
	var mm *SignalMismatchError
	s.Require().ErrorAs(err, &mm)
	s.Equal(SignalMismatchError{From: Replica, To: Idle, Signal: GracefulRelinquish}, *mm)

	_, err = c.Transition(s.ctx, Role(9), ChannelClose)
	s.ErrorIs(err, ErrInvalidPair)
	_, err = c.Transition(s.ctx, Candidate, Signal(0))
	s.ErrorIs(err, ErrSignalMismatch)

	after := c.Stats()
	s.Equal(Replica, c.Role())
	before.InvalidPairs, before.SignalMismatches = 2, 2
	s.Equal(before, after)

	recs := rec.records()
	s.Require().Len(recs, 4)
	for _, r := range recs {
		s.Error(r.Err)
		s.Equal(Replica, r.From)
		s.Zero(r.Generation)
	}
	s.Equal(Transition{Replica, Leader, ElectionWon}, recs[0].Transition)
	s.Equal(err, recs[3].Err)
}

func (s *CoordinatorSuite) TestIdempotentCloseHasNoSideEffects() {
	rec := &recorder{}
	var logs bytes.Buffer
	c := s.newCoordinator(WithObserver(rec.observe), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	for i := 0; i < 3; i++ {
		got, err := c.Transition(s.ctx, Idle, ChannelClose)
		s.Require().NoError(err)
		s.Equal(Transition{Idle, Idle, ChannelClose}, got)
		got, err = c.Fire(s.ctx, ChannelClose)
		s.Require().NoError(err)
		s.Equal(Transition{Idle, Idle, ChannelClose}, got)
	}
	s.Equal(Stats{Role: Idle, Transitions: map[Transition]uint64{}}, c.Stats())
	s.Empty(rec.records())
	s.Empty(logs.String())
	// And the machine still moves afterwards.
	_, err := c.Fire(s.ctx, CapabilitySelected)
	s.NoError(err)
}

func (s *CoordinatorSuite) TestCancelledContextChangesNothing() {
	rec := &recorder{}
	c := s.newCoordinator(WithInitialRole(Replica), WithObserver(rec.observe))
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	for i := 0; i < 3; i++ {
		_, err := c.Transition(ctx, Candidate, MissedHeartbeats)
		s.ErrorIs(err, context.Canceled)
		_, err = c.Transition(ctx, Leader, ElectionWon) // would be rejected
		s.ErrorIs(err, context.Canceled)
	}
	dctx, dcancel := context.WithDeadline(s.ctx, time.Unix(0, 0))
	defer dcancel()
	_, err := c.Fire(dctx, MissedHeartbeats)
	s.ErrorIs(err, context.DeadlineExceeded)

	s.Equal(Stats{Role: Replica, Transitions: map[Transition]uint64{}}, c.Stats())
	s.Empty(rec.records())

	// looplab would be wedged for good had it seen the cancelled
	// context; the coordinator still commits.
	_, err = c.Transition(s.ctx, Candidate, MissedHeartbeats)
	s.Require().NoError(err)
	s.Equal(Candidate, c.Role())
}

// lateCancel is a context whose Err turns non-nil after its first call:
// the context is cancelled between the lock-free check and the commit.
type lateCancel struct {
	context.Context
	calls atomic.Int32
}

func (l *lateCancel) Err() error {
	if l.calls.Add(1) > 1 {
		return context.Canceled
	}
	return nil
}

func (s *CoordinatorSuite) TestContextCancelledWhileWaitingForTheLock() {
	c := s.newCoordinator(WithInitialRole(Replica))
	ctx := &lateCancel{Context: s.ctx}
	_, err := c.Transition(ctx, Candidate, MissedHeartbeats)
	s.ErrorIs(err, context.Canceled)
	s.Equal(Stats{Role: Replica, Transitions: map[Transition]uint64{}}, c.Stats())
	_, err = c.Transition(s.ctx, Candidate, MissedHeartbeats)
	s.NoError(err)
}

func (s *CoordinatorSuite) TestCancellableContextCancelledAfterCommit() {
	// A live cancellable context goes to looplab without its
	// cancellation; cancelling it afterwards must not wedge looplab.
	c := s.newCoordinator()
	ctx, cancel := context.WithCancel(s.ctx)
	_, err := c.Fire(ctx, CapabilitySelected)
	s.Require().NoError(err)
	cancel()
	_, err = c.Fire(s.ctx, MissedHeartbeats)
	s.NoError(err)
	s.Equal(Candidate, c.Role())
}

func (s *CoordinatorSuite) TestOptions() {
	for _, r := range Roles() {
		c := s.newCoordinator(WithInitialRole(r))
		s.Equal(r, c.Role())
		s.Equal(r, c.Stats().Role)
	}
	_, err := NewCoordinator(WithInitialRole(Role(4)))
	s.ErrorContains(err, "Role(4) is not a defined role")
	_, err = NewCoordinator(WithObserver(nil))
	s.ErrorContains(err, "nil observer")
	_, err = NewCoordinator(nil)
	s.ErrorContains(err, "nil Option")

	c := s.newCoordinator(WithName("ch-7"), WithLogger(nil))
	s.Equal("ch-7", c.Name())
	s.Equal("ch-7", c.Stats().Name)
	_, err = c.Fire(s.ctx, CapabilitySelected) // nil logger: nothing to log to
	s.NoError(err)

	// Observers are called in the order given, each with every record.
	var order []int
	c = s.newCoordinator(
		WithObserver(func(context.Context, Record) { order = append(order, 1) }),
		WithObserver(func(context.Context, Record) { order = append(order, 2) }),
	)
	_, _ = c.Fire(s.ctx, CapabilitySelected)
	_, _ = c.Fire(s.ctx, ElectionWon) // rejected: recorded too
	s.Equal([]int{1, 2, 1, 2}, order)
}

type ctxKey struct{}

func seqsOf(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Generation
	}
	return out
}

// TestConcurrentTransitionsAreLinearizable hammers one coordinator from
// many goroutines (run it with -race). The committed records form one
// valid chain in Seq order, nothing is lost, and the counters add up.
func TestConcurrentTransitionsAreLinearizable(t *testing.T) {
	const workers, perWorker = 8, 400
	rec := &recorder{}
	c, err := NewCoordinator(WithObserver(rec.observe))
	require.NoError(t, err)

	var ok, rejected atomic.Uint64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for i := 0; i < perWorker; i++ {
				var err error
				if rng.Intn(4) == 0 {
					_, err = c.Transition(context.Background(), Role(rng.Intn(4)), Signal(1+rng.Intn(10)))
				} else {
					_, err = c.Fire(context.Background(), Signal(1+rng.Intn(10)))
				}
				if err == nil {
					ok.Add(1)
				} else {
					require.True(t, errors.Is(err, ErrInvalidPair) || errors.Is(err, ErrSignalMismatch), err)
					rejected.Add(1)
				}
				_ = c.Role()
			}
		}(int64(w))
	}
	wg.Wait()

	st := c.Stats()
	var sum uint64
	for _, n := range st.Transitions {
		sum += n
	}
	assert.Equal(t, st.Generation, sum)
	assert.Equal(t, rejected.Load(), st.InvalidPairs+st.SignalMismatches)

	commits := rec.commits()
	// Successful calls include idempotent closes, which commit nothing.
	assert.LessOrEqual(t, uint64(len(commits)), ok.Load())
	require.EqualValues(t, st.Generation, len(commits))
	prev := Idle
	for i, r := range commits {
		require.EqualValues(t, i+1, r.Generation, "commits delivered in Seq order, none lost")
		require.Equal(t, prev, r.From, "each commit starts where the previous one ended")
		_, err := Apply(r.From, r.To, r.Signal)
		require.NoError(t, err)
		prev = r.To
	}
	assert.Equal(t, prev, c.Role())
	assert.Greater(t, st.Generation, uint64(workers), "the run committed something")
}

func (s *CoordinatorSuite) TestLeaseFencesAReelectedLeader() {
	c := s.newCoordinator(WithInitialRole(Candidate))
	s.Equal(Lease{Candidate, 0}, c.Lease())
	s.False(c.Holds(c.Lease()), "a Candidate's lease never holds: only a Leader term does")
	fresh := s.newCoordinator()
	s.False(fresh.Holds(Lease{}), "the zero Lease never holds, not even on a fresh coordinator")
	s.False(fresh.Holds(fresh.Lease()))
	_, err := c.Fire(s.ctx, ElectionWon)
	s.Require().NoError(err)
	lease := c.Lease()
	s.Equal(Lease{Role: Leader, Generation: 1}, lease)
	s.True(c.Holds(lease))

	// Deposed and elected again: Role() says Leader as before, but the
	// lease taken the first time no longer holds.
	for _, sig := range []Signal{PeerLeaderObserved, MissedHeartbeats, ElectionWon} {
		_, err := c.Fire(s.ctx, sig)
		s.Require().NoError(err)
	}
	s.Equal(Leader, c.Role())
	s.False(c.Holds(lease), "the old lease must fail after re-election")
	s.True(c.Holds(c.Lease()))
	s.Equal(Lease{Role: Leader, Generation: 4}, c.Lease())

	// Rejections and the idempotent close do not end a lease.
	held := c.Lease()
	_, err = c.Fire(s.ctx, ElectionWon)
	s.Error(err)
	s.True(c.Holds(held))

	// Leases that never held: wrong role, future generation, and
	// generations that would alias in the packed state.
	s.False(c.Holds(Lease{Role: Replica, Generation: 4}))
	_, err = c.Fire(s.ctx, PeerLeaderObserved)
	s.Require().NoError(err)
	s.False(c.Holds(c.Lease()), "a Replica's current lease does not hold")
	s.False(c.Holds(Lease{Role: Leader, Generation: 5}), "nor a Leader lease of its generation")
	s.False(c.Holds(Lease{Role: Leader, Generation: 4}))
	s.False(c.Holds(Lease{Role: Leader, Generation: 6}))
	s.False(c.Holds(Lease{Role: Leader, Generation: 5 + 1<<56}))
	s.False(c.Holds(Lease{Role: Role(200), Generation: 5}))
}
