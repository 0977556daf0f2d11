package rolefsm

// The coordinator's observers, audit log and counts.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func (s *CoordinatorSuite) TestObserverGetsTheCallersContext() {
	var got any
	c := s.newCoordinator(WithObserver(func(ctx context.Context, _ Record) { got = ctx.Value(ctxKey{}) }))
	_, err := c.Fire(context.WithValue(s.ctx, ctxKey{}, "trace-1"), CapabilitySelected)
	s.Require().NoError(err)
	s.Equal("trace-1", got)
}

func (s *CoordinatorSuite) TestAuditLog() {
	var buf bytes.Buffer
	c := s.newCoordinator(WithName("orders"), WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	_, err := c.Fire(s.ctx, CapabilitySelected)
	s.Require().NoError(err)
	_, err = c.Transition(s.ctx, Leader, ElectionWon)
	s.Require().Error(err)

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	s.Require().Len(lines, 2)
	var commit, reject map[string]any
	s.Require().NoError(json.Unmarshal(lines[0], &commit))
	s.Require().NoError(json.Unmarshal(lines[1], &reject))
	delete(commit, "time")
	delete(reject, "time")
	s.Equal(map[string]any{"level": "INFO", "msg": "role transition", "name": "orders",
		"from": "Idle", "to": "Replica", "signal": "CapabilitySelected", "generation": float64(1)}, commit)
	s.Equal(map[string]any{"level": "WARN", "msg": "role transition rejected", "name": "orders",
		"from": "Replica", "to": "Leader", "signal": "ElectionWon", "generation": float64(1),
		"error": "invalid replica state transition: Replica → Leader"}, reject)
}

// TestColdStartIsNotThrash: a MissedHeartbeats under a context marked
// ColdStart counts in ColdStarts, not ElectionThrash, and says so in its
// record and its audit line; the mark means nothing on another signal.
func (s *CoordinatorSuite) TestColdStartIsNotThrash() {
	var buf bytes.Buffer
	var recs []Record
	c := s.newCoordinator(WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))),
		WithObserver(func(_ context.Context, r Record) { recs = append(recs, r) }))
	cold := ColdStart(s.ctx)
	for _, sig := range []Signal{CapabilitySelected, MissedHeartbeats, ElectionLost, MissedHeartbeats} {
		ctx := cold
		if len(recs) == 3 {
			ctx = s.ctx // a leader was lost: thrash
		}
		_, err := c.Fire(ctx, sig)
		s.Require().NoError(err)
	}
	st := c.Stats()
	s.Equal(uint64(1), st.ColdStarts)
	s.Equal(uint64(1), st.ElectionThrash)
	s.Equal(uint64(2), st.Transitions[Transition{Replica, Candidate, MissedHeartbeats}], "both count as transitions")
	s.Equal([]bool{false, true, false, false}, []bool{recs[0].ColdStart, recs[1].ColdStart, recs[2].ColdStart, recs[3].ColdStart})
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	s.Require().Len(lines, 4)
	s.Contains(string(lines[1]), `"cold_start":true`)
	for _, i := range []int{0, 2, 3} {
		s.NotContains(string(lines[i]), "cold_start")
	}
	b, err := json.Marshal(recs[1])
	s.Require().NoError(err)
	var back Record
	s.Require().NoError(json.Unmarshal(b, &back))
	s.True(back.ColdStart)
}

func (s *CoordinatorSuite) TestReentrantObserver() {
	// The observer reads the coordinator and drives it onward from
	// inside the callback: Idle → Replica → Candidate → Leader → Idle.
	var c *Coordinator
	var seqs []uint64
	var sawRoles []Role
	next := map[Role]Signal{Replica: MissedHeartbeats, Candidate: ElectionWon, Leader: GracefulRelinquish}
	obs := func(ctx context.Context, r Record) {
		s.Require().NoError(r.Err)
		seqs = append(seqs, r.Generation)
		sawRoles = append(sawRoles, c.Role())
		st := c.Stats()
		s.GreaterOrEqual(st.Generation, r.Generation)
		if sig, ok := next[r.To]; ok {
			_, err := c.Fire(ctx, sig)
			s.Require().NoError(err)
		}
	}
	c = s.newCoordinator(WithObserver(obs))
	_, err := c.Fire(s.ctx, CapabilitySelected)
	s.Require().NoError(err)
	// Every record was delivered before the outer Fire returned, in
	// Seq order, one at a time: each re-entrant commit waited for the
	// observer call in progress to return.
	s.Equal([]uint64{1, 2, 3, 4}, seqs)
	s.Equal([]Role{Replica, Candidate, Leader, Idle}, sawRoles)
	s.Equal(Idle, c.Role())
	s.EqualValues(4, c.Stats().Generation)
}

func (s *CoordinatorSuite) TestPanickingObserver() {
	rec := &recorder{}
	var calls atomic.Int32
	c := s.newCoordinator(
		WithObserver(func(context.Context, Record) {
			calls.Add(1)
			panic("observer bug")
		}),
		WithObserver(rec.observe),
	)
	for _, sig := range []Signal{CapabilitySelected, MissedHeartbeats, ElectionWon} {
		_, err := c.Fire(s.ctx, sig)
		s.Require().NoError(err, "a panicking observer does not fail the transition")
	}
	_, err := c.Fire(s.ctx, CapabilitySelected) // rejected
	s.Error(err)
	st := c.Stats()
	s.Equal(Leader, st.Role)
	s.EqualValues(3, st.Generation)
	s.EqualValues(4, st.ObserverPanics)
	s.EqualValues(4, calls.Load())
	s.Len(rec.records(), 4, "the next observer still gets every record")
	// Nothing is left locked: a stats read, and a commit from another
	// goroutine, finish.
	done := make(chan error)
	go func() {
		_, err := c.Fire(context.Background(), ChannelClose)
		done <- err
	}()
	s.NoError(<-done)
	s.Equal(Idle, c.Role())
}

func (s *CoordinatorSuite) TestPanickingLogHandler() {
	c := s.newCoordinator(WithLogger(slog.New(panicHandler{})))
	_, err := c.Fire(s.ctx, CapabilitySelected)
	s.NoError(err)
	s.Equal(Replica, c.Role())
	s.EqualValues(1, c.Stats().ObserverPanics)
}

type panicHandler struct{ slog.Handler }

func (panicHandler) Enabled(context.Context, slog.Level) bool { return true }

func (panicHandler) Handle(context.Context, slog.Record) error { panic("handler bug") }

func (s *CoordinatorSuite) TestObserverThatExitsItsGoroutine() {
	// runtime.Goexit from an observer (t.FailNow does this) must not
	// leave the delivery queue marked busy.
	rec := &recorder{}
	var first atomic.Bool
	first.Store(true)
	c := s.newCoordinator(WithObserver(func(ctx context.Context, r Record) {
		if first.CompareAndSwap(true, false) {
			runtime.Goexit()
		}
		rec.observe(ctx, r)
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Fire(context.Background(), CapabilitySelected)
	}()
	<-done
	_, err := c.Fire(s.ctx, MissedHeartbeats)
	s.Require().NoError(err)
	s.Equal([]uint64{2}, seqsOf(rec.records()))
}

func (s *CoordinatorSuite) TestAuditTimeIsTheRecordTime() {
	var buf bytes.Buffer
	var at time.Time
	c := s.newCoordinator(
		WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))),
		WithObserver(func(_ context.Context, r Record) { at = r.At }),
	)
	before := time.Now()
	_, err := c.Fire(s.ctx, CapabilitySelected)
	s.Require().NoError(err)
	after := time.Now()
	var line struct{ Time time.Time }
	s.Require().NoError(json.Unmarshal(buf.Bytes(), &line))
	s.True(line.Time.Equal(at), "log time %v, record time %v", line.Time, at)
	s.False(at.Before(before) || at.After(after), "At is taken during the call")

	// A handler that is not enabled for Info still sees the Warn.
	buf.Reset()
	c = s.newCoordinator(WithLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	_, _ = c.Fire(s.ctx, CapabilitySelected)
	s.Empty(buf.String())
	_, _ = c.Fire(s.ctx, ElectionWon)
	s.Contains(buf.String(), `"level":"WARN"`)
}

func TestCountedIsTheMatrixButTheIdempotentClose(t *testing.T) {
	var want []Transition
	for _, tr := range Matrix() {
		if tr.From != tr.To {
			want = append(want, tr)
		}
	}
	got := Counted()
	assert.Equal(t, want, got[:])
}

// TestCountsFollowCounted commits each counted triple once on a fresh
// coordinator: Counts puts it at its index in Counted, and derives the
// leader changes and the thrash from it.
func TestCountsFollowCounted(t *testing.T) {
	ctx := context.Background()
	for i, tr := range Counted() {
		c, err := NewCoordinator(WithInitialRole(tr.From))
		require.NoError(t, err)
		_, err = c.Transition(ctx, tr.To, tr.Signal)
		require.NoError(t, err, "%v", tr)
		var want [NumCounted]uint64
		want[i] = 1
		n := c.Counts()
		assert.Equal(t, want, n.Transitions, "%v", tr)
		assert.Equal(t, Counts{Role: tr.To, Generation: 1, Transitions: want,
			LeaderChanges: b2u(tr.To == Leader), ElectionThrash: b2u(tr.Signal == MissedHeartbeats)}, n, "%v", tr)
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// TestCountsAllocatesNothing: a scrape reads every coordinator's
// counters, so reading them must not allocate, with or without
// observers.
func TestCountsAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	plain, err := NewCoordinator()
	require.NoError(t, err)
	watched, err := NewCoordinator(WithObserver(func(context.Context, Record) { panic("boom") }))
	require.NoError(t, err)
	for _, c := range []*Coordinator{plain, watched} {
		_, err := c.Fire(ctx, CapabilitySelected)
		require.NoError(t, err)
		_, _ = c.Transition(ctx, Leader, ElectionWon) // rejected
		var n Counts
		assert.Zero(t, testing.AllocsPerRun(100, func() { n = c.Counts() }))
		assert.Equal(t, uint64(1), n.InvalidPairs)
	}
	assert.Equal(t, uint64(2), watched.Counts().ObserverPanics, "the commit's record and the rejection's")
	assert.Zero(t, plain.Counts().ObserverPanics)
}

// TestWithClock: records are stamped with the coordinator's clock, for
// commits and rejections alike; a nil clock is refused.
func TestWithClock(t *testing.T) {
	at := time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
	var got []Record
	c, err := NewCoordinator(WithClock(func() time.Time { return at }), WithObserver(func(_ context.Context, r Record) { got = append(got, r) }))
	require.NoError(t, err)
	_, err = c.Transition(context.Background(), Replica, CapabilitySelected)
	require.NoError(t, err)
	_, err = c.Transition(context.Background(), Leader, ChannelClose)
	require.Error(t, err)
	sub := c.Subscribe(4)
	defer sub.Close()
	_, err = c.Transition(context.Background(), Candidate, MissedHeartbeats)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for _, r := range got {
		assert.Equal(t, at, r.At, "%v", r)
	}
	assert.Equal(t, at, (<-sub.C).At, "a subscription's records too")
	_, err = NewCoordinator(WithClock(nil))
	require.EqualError(t, err, "rolefsm: WithClock: nil clock")
}
