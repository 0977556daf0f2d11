package rolefsm

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

var soak = flag.Int("rolefsm.soak", 1, "multiply the load test's transitions by this factor (a longer soak)")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// mustCommitAfterFault is the proof that follows every injected fault:
// the coordinator still commits a valid transition, from a fresh
// goroutine, and still answers reads.
func mustCommitAfterFault(t *testing.T, c *Coordinator) {
	t.Helper()
	from := c.Role()
	sig := ChannelClose
	if from == Idle {
		sig = CapabilitySelected
	}
	gen := c.Lease().Generation
	done := make(chan error, 1)
	go func() {
		_, err := c.Fire(context.Background(), sig)
		done <- err
	}()
	require.NoError(t, <-done)
	assert.Equal(t, gen+1, c.Stats().Generation)
	to, _ := Destination(sig)
	assert.Equal(t, to, c.Role())
}

func TestFaultReentrantObserver(t *testing.T) {
	// Each kind of call back into the coordinator, from inside the
	// callback, on every record.
	var c *Coordinator
	var holds, stale []bool
	var first Lease
	obs := func(ctx context.Context, r Record) {
		if r.Err != nil {
			return
		}
		l := c.Lease()
		holds = append(holds, c.Holds(l))
		stale = append(stale, c.Holds(first))
		assert.Equal(t, l.Role, c.Role())
		st := c.Stats()
		assert.Equal(t, l.Generation, st.Generation)
		switch {
		case r.To == Replica && r.Generation == 1:
			_, err := c.Transition(ctx, Candidate, MissedHeartbeats)
			assert.NoError(t, err)
		case r.To == Candidate:
			_, err := c.Fire(ctx, ElectionWon)
			assert.NoError(t, err)
		}
	}
	var err error
	c, err = NewCoordinator(WithObserver(obs))
	require.NoError(t, err)
	first = c.Lease()
	_, err = c.Fire(context.Background(), CapabilitySelected)
	require.NoError(t, err)
	assert.Equal(t, Leader, c.Role())
	assert.Equal(t, []bool{false, false, true}, holds, "only the Leader term holds")
	assert.Equal(t, []bool{false, false, false}, stale)
	mustCommitAfterFault(t, c)
}

// TestFaultSlowObserver documents what a slow observer does: it holds
// up the Transition call that is delivering records, and only that
// call. Other goroutines commit, and return, meanwhile; their records
// wait in the queue and are delivered, in order, by the blocked call
// once the observer returns.
func TestFaultSlowObserver(t *testing.T) {
	rec := &recorder{}
	entered, release := make(chan struct{}), make(chan struct{})
	c, err := NewCoordinator(WithObserver(func(ctx context.Context, r Record) {
		if r.Generation == 1 && r.Err == nil {
			close(entered)
			<-release
		}
		rec.observe(ctx, r)
	}))
	require.NoError(t, err)

	slow := make(chan error, 1)
	go func() {
		_, err := c.Fire(context.Background(), CapabilitySelected)
		slow <- err
	}()
	<-entered
	// The observer is blocked on record 1. Commits go on.
	for _, sig := range []Signal{MissedHeartbeats, ElectionWon} {
		_, err := c.Fire(context.Background(), sig)
		require.NoError(t, err)
	}
	_, err = c.Fire(context.Background(), MissedHeartbeats) // rejected, also queued
	require.Error(t, err)
	assert.Equal(t, Leader, c.Role())
	assert.EqualValues(t, 3, c.Stats().Generation)
	assert.True(t, c.Holds(Lease{Leader, 3}))
	select {
	case err := <-slow:
		t.Fatalf("the delivering call returned (%v) while its observer was blocked", err)
	default:
	}
	assert.Empty(t, rec.records(), "nothing overtakes the blocked record")

	close(release)
	require.NoError(t, <-slow)
	recs := rec.records()
	require.Len(t, recs, 4)
	assert.Equal(t, []uint64{1, 2, 3, 3}, seqsOf(recs))
	assert.Error(t, recs[3].Err)
	mustCommitAfterFault(t, c)
}

// TestFaultContextCancelledByAnObserver: an observer cancels the
// context of the call that is delivering its own commit. The commit
// stands, the next call sees the cancellation, and the machine is not
// wedged. (A context cancelled before the call, or while it waits for
// the lock, is the coordinator suite's.)
func TestFaultContextCancelledByAnObserver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := NewCoordinator(WithInitialRole(Replica), WithObserver(func(context.Context, Record) { cancel() }))
	require.NoError(t, err)
	_, err = c.Fire(ctx, MissedHeartbeats)
	require.NoError(t, err)
	_, err = c.Fire(ctx, ElectionWon)
	require.ErrorIs(t, err, context.Canceled)
	mustCommitAfterFault(t, c)
}

type failingHandler struct{ calls *atomic.Int32 }

func (failingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h failingHandler) Handle(context.Context, slog.Record) error {
	h.calls.Add(1)
	return errors.New("disk full")
}
func (h failingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h failingHandler) WithGroup(string) slog.Handler      { return h }

func TestFaultLogHandler(t *testing.T) {
	var calls atomic.Int32
	c, err := NewCoordinator(WithLogger(slog.New(failingHandler{&calls})))
	require.NoError(t, err)
	_, err = c.Fire(context.Background(), CapabilitySelected)
	require.NoError(t, err, "a failing handler does not fail the transition")
	_, err = c.Fire(context.Background(), ElectionWon)
	require.ErrorIs(t, err, ErrInvalidPair)
	assert.EqualValues(t, 2, calls.Load())
	assert.Zero(t, c.Stats().ObserverPanics)
	mustCommitAfterFault(t, c)

	c, err = NewCoordinator(WithLogger(slog.New(panicHandler{})))
	require.NoError(t, err)
	_, err = c.Fire(context.Background(), CapabilitySelected)
	require.NoError(t, err)
	assert.EqualValues(t, 1, c.Stats().ObserverPanics)
	mustCommitAfterFault(t, c)
}

// seqChecker is an observer that insists on seeing every committed Seq
// exactly once, in order. It keeps its state without a lock: delivery
// is one record at a time, so the race detector would flag any
// concurrent call.
type seqChecker struct {
	next    uint64
	prev    Role
	commits uint64
	bad     []string
}

func (s *seqChecker) observe(_ context.Context, r Record) {
	if r.Err != nil {
		return
	}
	s.commits++
	if r.Generation != s.next+1 {
		s.bad = append(s.bad, "seq out of order")
	}
	if r.From != s.prev {
		s.bad = append(s.bad, "chain broken: "+r.From.String()+" after "+s.prev.String())
	}
	s.next, s.prev = r.Generation, r.To
}

// validFrom lists, per role, the signals that move it somewhere else.
var validFrom = map[Role][]Signal{
	Idle:      {CapabilitySelected},
	Replica:   {MissedHeartbeats, DiskPressureWithdraw, ChannelClose},
	Candidate: {ElectionWon, ElectionLost, CandidateDiskPressureWithdraw, ChannelClose},
	Leader:    {GracefulRelinquish, LeaderDiskPressureWithdraw, ChannelClose, PeerLeaderObserved},
}

// TestLoad runs 16 writers and 16 readers against one coordinator with
// two observers, for a bounded number of transitions. Nothing is lost:
// Generation equals the sum of the committed counters and the number of
// committing calls, and each observer saw every Seq once, in order.
// Every reader snapshot is self-consistent. Run with -race; pass
// -rolefsm.soak=N for a run N times longer.
func TestLoad(t *testing.T) {
	const writers, readers = 16, 16
	perWriter := 1500 * *soak
	checkers := []*seqChecker{{}, {}}
	c, err := NewCoordinator(WithObserver(checkers[0].observe), WithObserver(checkers[1].observe))
	require.NoError(t, err)

	var committedCalls, rejected, noops atomic.Uint64
	var stop atomic.Bool
	var readerErrs sync.Map
	var wg, rwg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for i := 0; i < perWriter; i++ {
				// Mostly a signal valid from the role just read (it may
				// be stale by the time it commits), sometimes any.
				sig := Signal(1 + rng.Intn(10))
				if valid := validFrom[c.Role()]; rng.Intn(4) != 0 {
					sig = valid[rng.Intn(len(valid))]
				}
				tr, err := c.Fire(context.Background(), sig)
				switch {
				case err != nil:
					rejected.Add(1)
				case tr.From == Idle && tr.To == Idle:
					noops.Add(1)
				default:
					committedCalls.Add(1)
				}
			}
		}(int64(w))
	}
	for r := 0; r < readers; r++ {
		rwg.Add(1)
		go func(r int) {
			defer rwg.Done()
			for !stop.Load() {
				l := c.Lease()
				if !l.Role.Valid() {
					readerErrs.Store("invalid role", l)
				}
				if r%4 == 0 {
					st := c.Stats()
					var sum uint64
					for _, n := range st.Transitions {
						sum += n
					}
					if sum != st.Generation {
						readerErrs.Store("stats snapshot inconsistent", st)
					}
					if st.Generation < l.Generation {
						readerErrs.Store("generation went back", st)
					}
				}
				// A generation names one role: a torn read would not.
				if l2 := c.Lease(); l2.Generation == l.Generation && l2.Role != l.Role {
					readerErrs.Store("lease torn", l2)
				}
				// A lease that no longer holds has been overtaken.
				if l.Role == Leader && !c.Holds(l) && c.Lease().Generation <= l.Generation {
					readerErrs.Store("Holds false but nothing committed", l)
				}
			}
		}(r)
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		// A watchdog, not a timing: the run takes well under a second.
		t.Fatal("writers did not finish: deadlock")
	}
	stop.Store(true)
	rwg.Wait()

	readerErrs.Range(func(k, v any) bool {
		t.Errorf("%v: %+v", k, v)
		return true
	})
	st := c.Stats()
	var sum uint64
	for _, n := range st.Transitions {
		sum += n
	}
	total := uint64(writers * perWriter)
	assert.Equal(t, total, committedCalls.Load()+rejected.Load()+noops.Load())
	assert.Equal(t, committedCalls.Load(), st.Generation)
	assert.Equal(t, st.Generation, sum)
	assert.Equal(t, rejected.Load(), st.InvalidPairs+st.SignalMismatches)
	for i, ch := range checkers {
		assert.Empty(t, ch.bad, "observer %d", i)
		assert.Equal(t, st.Generation, ch.commits, "observer %d saw every commit", i)
		assert.Equal(t, st.Generation, ch.next, "observer %d saw the last Seq", i)
	}
	assert.Greater(t, st.Generation, uint64(1000), "the load committed transitions")
	t.Logf("load: %d attempts, %d committed, %d rejected, %d idempotent closes, %d leader changes",
		total, st.Generation, rejected.Load(), noops.Load(), st.LeaderChanges)
}

// TestBadInputEverywhere sends every Role and Signal value, defined or
// not, to every entry point: a clear error for the undefined ones, never
// a panic, never a state change.
func TestBadInputEverywhere(t *testing.T) {
	c, err := NewCoordinator(WithInitialRole(Candidate))
	require.NoError(t, err)
	ctx := context.Background()
	for v := 0; v < 256; v++ {
		r, s := Role(v), Signal(v)
		assert.NotEmpty(t, r.String())
		assert.NotEmpty(t, s.String())
		_, rerr := r.MarshalText()
		_, serr := s.MarshalText()
		_, cerr := NewCoordinator(WithInitialRole(r))
		if v < 4 {
			assert.NoError(t, rerr)
			assert.NoError(t, cerr)
		} else {
			assert.ErrorContains(t, rerr, "not a defined role")
			assert.ErrorContains(t, cerr, "not a defined role")
		}
		if v >= 1 && v <= 10 {
			assert.NoError(t, serr)
			continue
		}
		assert.ErrorContains(t, serr, "not a defined signal")
		// An undefined signal never moves the coordinator.
		for _, to := range []Role{Idle, Replica, Candidate, Leader, Role(4), Role(255)} {
			_, err := c.Transition(ctx, to, s)
			assert.Error(t, err)
		}
		_, err := c.Fire(ctx, s)
		assert.ErrorIs(t, err, ErrUnknownSignal)
		assert.Contains(t, err.Error(), s.String())
		if v >= 4 {
			// An undefined role never moves it either, whatever the signal.
			for _, sig := range Signals() {
				_, err := c.Transition(ctx, r, sig)
				assert.ErrorIs(t, err, ErrInvalidPair)
			}
		}
		assert.Equal(t, Candidate, c.Role())
		assert.Zero(t, c.Stats().Generation)
	}
	for _, in := range []string{"", " ", "Leader\x00", "\xc3\x28", string(make([]byte, 1<<20)), "Replica,Leader"} {
		r, s := Leader, ElectionWon
		assert.Error(t, r.UnmarshalText([]byte(in)))
		assert.Error(t, s.UnmarshalText([]byte(in)))
		assert.Equal(t, Leader, r)
		assert.Equal(t, ElectionWon, s)
		_, err := ParseRole(in)
		assert.Less(t, len(err.Error()), 400, "at most 64 input bytes are quoted")
	}
	mustCommitAfterFault(t, c)
}
