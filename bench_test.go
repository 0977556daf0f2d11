package rolefsm

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/looplab/fsm"
)

// The benchmarks come in pairs with the baselines below them, so that
// every ratio comes from one run: bench/run.sh prints them with
// benchstat. Each validation benchmark walks the same 16 inputs.

var (
	sinkBool  bool
	errSink   error
	sinkRole  Role
	sinkTrans Transition
)

// committedTriples are the 13 permitted triples, padded to 16 so that
// i&15 indexes them.
var committedTriples = func() [16]Transition {
	var out [16]Transition
	m := Matrix()
	for i := range out {
		out[i] = m[i%len(m)]
	}
	return out
}()

// rejectedTriples alternate the two error kinds.
var rejectedTriples = [16]Transition{
	{Idle, Leader, ElectionWon}, {Idle, Replica, ElectionWon},
	{Replica, Leader, ElectionWon}, {Replica, Idle, GracefulRelinquish},
	{Leader, Candidate, MissedHeartbeats}, {Leader, Idle, DiskPressureWithdraw},
	{Candidate, Candidate, ElectionLost}, {Candidate, Leader, ElectionLost},
	{Idle, Candidate, MissedHeartbeats}, {Idle, Idle, GracefulRelinquish},
	{Replica, Replica, CapabilitySelected}, {Replica, Candidate, ElectionWon},
	{Leader, Leader, ElectionWon}, {Leader, Replica, ElectionLost},
	{Candidate, Candidate, ChannelClose}, {Candidate, Idle, ElectionWon},
}

func BenchmarkApply(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t := committedTriples[i&15]
		sinkTrans, errSink = Apply(t.From, t.To, t.Signal)
	}
}

func BenchmarkApplyReject(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t := rejectedTriples[i&15]
		sinkTrans, errSink = Apply(t.From, t.To, t.Signal)
	}
}

// baselineTable is the plain [4][4][10] lookup: the floor for Apply.
var baselineTable = func() (t [4][4][10]bool) {
	for _, tr := range Matrix() {
		t[tr.From][tr.To][tr.Signal-1] = true
	}
	return t
}()

func BenchmarkBaselineTable(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t := committedTriples[i&15]
		sinkBool = baselineTable[t.From][t.To][t.Signal-1]
	}
}

func BenchmarkRole(b *testing.B) {
	c, _ := NewCoordinator(WithInitialRole(Leader))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkRole = c.Role()
	}
}

func BenchmarkHolds(b *testing.B) {
	c, _ := NewCoordinator(WithInitialRole(Leader))
	l := c.Lease()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkBool = c.Holds(l)
	}
}

var baselineWord atomic.Uint64

func BenchmarkBaselineAtomicLoad(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkRole = Role(baselineWord.Load())
	}
}

// background calls step(0), step(1), ... on a goroutine of its own
// until stop is called; stop returns once the goroutine has ended.
func background(step func(i int)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			step(i)
		}
	}()
	return func() { close(done); wg.Wait() }
}

// BenchmarkRoleParallel reads the role from every core while one
// goroutine keeps transitioning: readers never wait on the writer.
func BenchmarkRoleParallel(b *testing.B) {
	c, _ := NewCoordinator()
	ctx := context.Background()
	stop := background(func(i int) { _, _ = c.Fire(ctx, cycle[i&3].Signal) })
	defer stop()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var r Role
		for pb.Next() {
			r = c.Role()
		}
		sinkRole = r
	})
}

// BenchmarkBaselineAtomicLoadParallel is RoleParallel's floor: the same
// parallel readers of one atomic word, while a writer commits the same
// cycle through raw looplab and stores to that word after each step, so
// that the word changes at the rate the coordinator's role does.
func BenchmarkBaselineAtomicLoadParallel(b *testing.B) {
	var word atomic.Uint64
	m, _ := looplabBaseline()
	ctx := context.Background()
	stop := background(func(i int) {
		_ = m.Event(ctx, signalNames[cycle[i&3].Signal])
		word.Store(uint64(i))
	})
	defer stop()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var r Role
		for pb.Next() {
			r = Role(word.Load())
		}
		sinkRole = r
	})
}

// cycle is the committed cycle every transition benchmark walks.
var cycle = [4]Transition{
	{Idle, Replica, CapabilitySelected},
	{Replica, Candidate, MissedHeartbeats},
	{Candidate, Leader, ElectionWon},
	{Leader, Idle, GracefulRelinquish},
}

func benchCycle(b *testing.B, c *Coordinator) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := cycle[i&3]
		if _, err := c.Transition(ctx, t.To, t.Signal); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransition is one committed step of the cycle
// Idle → Replica → Candidate → Leader → Idle.
func BenchmarkTransition(b *testing.B) {
	c, _ := NewCoordinator()
	benchCycle(b, c)
}

// BenchmarkTransitionObserver is the same cycle with one observer and
// no logger.
func BenchmarkTransitionObserver(b *testing.B) {
	var n int
	c, _ := NewCoordinator(WithObserver(func(context.Context, Record) { n++ }))
	benchCycle(b, c)
	sinkBool = n > 0
}

// BenchmarkTransitionReject is a rejected attempt, both kinds in turn,
// from Idle.
func BenchmarkTransitionReject(b *testing.B) {
	c, _ := NewCoordinator()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i&1 == 0 {
			_, errSink = c.Transition(ctx, Leader, ElectionWon) // invalid pair
		} else {
			_, errSink = c.Transition(ctx, Replica, ElectionWon) // signal mismatch
		}
	}
	if errSink == nil {
		b.Fatal("not rejected")
	}
}

// BenchmarkTransitionParallel drives one coordinator from every core,
// each goroutine firing a signal valid from the role it just read. With
// the role racing, some attempts are rejected: commits/op says how many
// committed.
func BenchmarkTransitionParallel(b *testing.B) {
	c, _ := NewCoordinator()
	next := [4]Signal{Idle: CapabilitySelected, Replica: MissedHeartbeats, Candidate: ElectionWon, Leader: GracefulRelinquish}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			_, _ = c.Fire(ctx, next[c.Role()])
		}
	})
	b.ReportMetric(float64(c.Lease().Generation)/float64(b.N), "commits/op")
}

// looplabBaseline is raw looplab/fsm on the same ten events, with
// before/after callbacks that count, as the Coordinator's do.
func looplabBaseline() (*fsm.FSM, *[2]uint64) {
	var counts [2]uint64
	return fsm.NewFSM("Idle", events, fsm.Callbacks{
		"before_event": func(context.Context, *fsm.Event) { counts[0]++ },
		"after_event":  func(context.Context, *fsm.Event) { counts[1]++ },
	}), &counts
}

func BenchmarkBaselineLooplabEvent(b *testing.B) {
	m, counts := looplabBaseline()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := m.Event(ctx, signalNames[cycle[i&3].Signal]); err != nil {
			b.Fatal(err)
		}
	}
	if counts[1] != uint64(b.N) {
		b.Fatal("callbacks did not run")
	}
}

func BenchmarkBaselineLooplabReject(b *testing.B) {
	m, _ := looplabBaseline()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		errSink = m.Event(ctx, "ElectionWon") // not allowed from Idle
	}
	if errSink == nil {
		b.Fatal("not rejected")
	}
}

var sinkTime time.Time

// BenchmarkBaselineClock is what the wall-clock read behind Record.At
// costs: the floor of the observer path's overhead.
func BenchmarkBaselineClock(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkTime = time.Now()
	}
}
