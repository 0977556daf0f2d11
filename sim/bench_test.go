package sim

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSweep1000 is the goal: 1000 seeds × 5 nodes × 400
// steps with every fault kind, across GOMAXPROCS workers, each seed run
// twice to prove it reproducible. One op is the whole sweep.
func BenchmarkSweep1000(b *testing.B) {
	cfg := Config{Seed: 1, Faults: AllFaults}
	for i := 0; i < b.N; i++ {
		s, err := RunSweep(context.Background(), cfg, 1000, SweepOptions{})
		if err != nil || len(s.Violating) > 0 {
			b.Fatal(err, s.Violating)
		}
	}
}

// BenchmarkRun is one seed: 5 nodes, 400 steps, every fault kind; the
// allocations are the per-run setup (five Coordinators and their
// looplab machines) and the transitions' own.
func BenchmarkRun(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Run(Config{Seed: uint64(i), Faults: AllFaults}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineSetup is what every run pays before its first step:
// five replica.Nodes, each with a Coordinator (a looplab machine), and the
// five CapabilitySelected commits. BenchmarkRun against it is the cost
// of the 400 steps.
func BenchmarkBaselineSetup(b *testing.B) {
	cfg, err := Config{Seed: 1, Faults: AllFaults}.normalized()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := newRun(cfg, nil, hooks{})
		if err := r.start(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodeStep is one step of a settled cluster of 5, 16 and 64
// nodes; ns/node-step divides it by the cluster size. Each node hears
// from every other, so the heartbeats a node takes in per step
// (heartbeats/node-step) grow with the cluster; the cost of each does
// not: peers are found in constant time.
func BenchmarkNodeStep(b *testing.B) {
	for _, nodes := range []int{5, 16, 64} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			r := settled(b, nodes, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			before := r.delivered
			for i := 0; i < b.N; i++ {
				r.tick()
				r.step++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nodes), "ns/node-step")
			b.ReportMetric(float64(r.delivered-before)/float64(b.N)/float64(nodes), "heartbeats/node-step")
		})
	}
}

// settled returns a run of the given size, with no fault, after 400
// steps (every node has joined, elected and followed), with room for
// more steps.
func settled(tb testing.TB, nodes, more int) *run {
	tb.Helper()
	cfg, err := Config{Nodes: nodes, Steps: 400 + more}.normalized()
	if err != nil {
		tb.Fatal(err)
	}
	r := newRun(cfg, nil, hooks{})
	if err := r.start(); err != nil {
		tb.Fatal(err)
	}
	for r.step = 0; r.step < 400; r.step++ {
		r.tick()
	}
	return r
}
