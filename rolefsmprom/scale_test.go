package rolefsmprom

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rolefsm/rolefsm"
)

// The scrape's cost with many channels: one op is one Gather of a
// registry. Each has a baseline: the same number of series held in
// client_golang's own vectors, the floor that client_golang sets.

// elected returns n named coordinators, each elected Leader once, as a
// node's channels are after their first election.
func elected(b *testing.B, n int) []*rolefsm.Coordinator {
	b.Helper()
	ctx := context.Background()
	cs := make([]*rolefsm.Coordinator, n)
	for i := range cs {
		c, err := rolefsm.NewCoordinator(rolefsm.WithName(fmt.Sprintf("ch%06d", i)))
		if err != nil {
			b.Fatal(err)
		}
		for _, sig := range []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon} {
			if _, err := c.Fire(ctx, sig); err != nil {
				b.Fatal(err)
			}
		}
		cs[i] = c
	}
	return cs
}

func gather(b *testing.B, reg *prometheus.Registry) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	series := 0
	for i := 0; i < b.N; i++ {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		series = 0
		for _, mf := range mfs {
			series += len(mf.GetMetric())
		}
	}
	b.ReportMetric(float64(series), "series")
}

// gatherSet gathers a registry holding a Set of n elected channels.
func gatherSet(b *testing.B, n int, opts ...Option) {
	b.Helper()
	set := NewSet(opts...)
	for _, c := range elected(b, n) {
		if _, err := set.Add(c); err != nil {
			b.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(set)
	gather(b, reg)
}

// BenchmarkGatherSet: a Set of n coordinators under the default cap
// (1,024 with series of their own, the rest folded).
func BenchmarkGatherSet(b *testing.B) {
	for _, n := range []int{1, 1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) { gatherSet(b, n) })
	}
}

// BenchmarkGatherOwnSeries: a Set that gives every one of n channels
// series of its own; all=true emits every transition series.
func BenchmarkGatherOwnSeries(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("channels=%d/all=false", n), func(b *testing.B) { gatherSet(b, n, WithMaxChannels(n)) })
		b.Run(fmt.Sprintf("channels=%d/all=true", n), func(b *testing.B) {
			gatherSet(b, n, WithMaxChannels(n), WithAllTransitions())
		})
	}
}

// constSeries is a collector that sends metrics built beforehand.
type constSeries []prometheus.Metric

func (c constSeries) Describe(ch chan<- *prometheus.Desc) { ch <- c[0].Desc() }

func (c constSeries) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

// BenchmarkBaselineGatherConst is the registry's own share of a
// scrape: it gathers series built before the scrape, sent in its sort
// order, labelled as a Set's transition series are; the series counts
// are those of BenchmarkGatherSet with 100,000 channels and of
// BenchmarkGatherOwnSeries with 10,000. No collector can scrape the
// same number of series for less.
func BenchmarkBaselineGatherConst(b *testing.B) {
	for _, series := range []int{13_325, 130_000} {
		b.Run(fmt.Sprintf("series=%d", series), func(b *testing.B) {
			desc := prometheus.NewDesc("rolefsm_baseline_total", "Baseline.", []string{"channel", "from", "signal", "to"}, nil)
			ms := make(constSeries, series)
			for i := range ms {
				ms[i] = prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(i),
					fmt.Sprintf("ch%06d", i/13), "Replica", fmt.Sprintf("s%02d", i%13), "Candidate")
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(ms)
			gather(b, reg)
		})
	}
}
