package rolefsm

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/looplab/fsm"
)

// How cost grows with the number of channels: the live heap a
// coordinator keeps, and a transition's cost when it is one of many
// coordinators (their machines fall out of the CPU caches). Each has
// its baseline: looplab's machine alone, built as NewCoordinator builds
// it.

// liveHeap returns the bytes of live heap after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapPer reports the live heap each of b.N values made by mk keeps, as
// the metric unit ("B/coordinator").
func heapPer[T any](b *testing.B, unit string, mk func() T) {
	b.Helper()
	keep := make([]T, b.N)
	before := liveHeap()
	b.ResetTimer()
	for i := range keep {
		keep[i] = mk()
	}
	b.StopTimer()
	after := liveHeap()
	runtime.KeepAlive(keep)
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), unit)
}

func BenchmarkHeapCoordinator(b *testing.B) {
	heapPer(b, "B/coordinator", func() *Coordinator {
		c, err := NewCoordinator()
		if err != nil {
			b.Fatal(err)
		}
		return c
	})
}

// BenchmarkBaselineHeapLooplab is looplab's share: the machine with the
// matrix's events and the two callbacks a coordinator registers.
func BenchmarkBaselineHeapLooplab(b *testing.B) {
	heapPer(b, "B/coordinator", func() *fsm.FSM {
		return fsm.NewFSM(roleNames[Idle], events, fsm.Callbacks{
			"before_event": func(context.Context, *fsm.Event) {},
			"after_event":  func(context.Context, *fsm.Event) {},
		})
	})
}

// channelCounts are the fleet sizes of the scale benchmarks.
var channelCounts = []int{1, 1_000, 10_000, 100_000}

// BenchmarkTransitionChannels commits the four-step cycle on each of n
// coordinators in turn: one op is one committed transition.
func BenchmarkTransitionChannels(b *testing.B) {
	ctx := context.Background()
	for _, n := range channelCounts {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			cs := make([]*Coordinator, n)
			for i := range cs {
				var err error
				if cs[i], err = NewCoordinator(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := cycle[(i/n)&3]
				if _, err := cs[i%n].Transition(ctx, t.To, t.Signal); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBaselineLooplabEventChannels is the same walk over n raw
// looplab machines with the same callbacks.
func BenchmarkBaselineLooplabEventChannels(b *testing.B) {
	ctx := context.Background()
	for _, n := range channelCounts {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			ms := make([]*fsm.FSM, n)
			for i := range ms {
				ms[i], _ = looplabBaseline()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := ms[i%n].Event(ctx, signalNames[cycle[(i/n)&3].Signal]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var (
	sinkCounts Counts
	sinkStats  Stats
)

// walked returns a coordinator that has committed every step of the
// cycle, so that its counters are not all zero.
func walked(b *testing.B) *Coordinator {
	b.Helper()
	c, err := NewCoordinator(WithName("orders"))
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range cycle {
		if _, err := c.Transition(context.Background(), t.To, t.Signal); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// BenchmarkCounts reads one coordinator's counters as a scrape does.
func BenchmarkCounts(b *testing.B) {
	c := walked(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkCounts = c.Counts()
	}
}

// BenchmarkStats reads them into Stats, with its map.
func BenchmarkStats(b *testing.B) {
	c := walked(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkStats = c.Stats()
	}
}

// BenchmarkBaselineLockedCopy is the floor of a consistent read: take
// an uncontended mutex, copy twelve counters, let go.
func BenchmarkBaselineLockedCopy(b *testing.B) {
	var mu sync.Mutex
	var src, dst [NumCounted]uint64
	src[3] = 1
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		mu.Lock()
		dst = src
		mu.Unlock()
	}
	sinkCounts.Transitions = dst
}
