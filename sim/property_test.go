package sim

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/rolefsm/rolefsm/policy"
)

// drawConfig draws a whole configuration: cluster size, election,
// heartbeat interval and miss threshold, fault kinds and rate, run
// length and seed.
func drawConfig(t *rapid.T, minMiss int) Config {
	hb, err := policy.NewHeartbeat(
		time.Duration(rapid.IntRange(2, 20).Draw(t, "interval_steps"))*DefaultStep,
		rapid.IntRange(minMiss, 6).Draw(t, "miss"))
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Nodes:     rapid.IntRange(1, 12).Draw(t, "nodes"),
		Seed:      rapid.Uint64().Draw(t, "seed"),
		Steps:     rapid.IntRange(50, 800).Draw(t, "steps"),
		Heartbeat: hb,
		Policy:    rapid.SampledFrom(policy.Policies()).Draw(t, "policy"),
		Faults:    Faults(rapid.IntRange(0, int(AllFaults)).Draw(t, "faults")),
		FaultRate: rapid.Float64Range(0.001, 0.2).Draw(t, "rate"),
	}
}

// TestSafetyHoldsEverywhere: whatever the configuration, under either
// election, even with a miss threshold of 1, every invariant but
// single-leader holds: every transition is valid and accepted, no node
// is stuck as Candidate or leaderless Replica, no write lands after its
// leader left office, and the run reproduces. Single-leader is a
// bounded-time promise that depends on the configuration
// (bench/sim-grid.sh measures where it holds).
func TestSafetyHoldsEverywhere(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t, 1)
		res, err := Check(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		for inv, n := range res.ByInvariant {
			if inv != InvSingleLeader {
				t.Fatalf("%d %s violations; first of all: %v", n, inv, res.Violations[0])
			}
		}
	})
}

// TestEveryClusterEventuallyHasOneLeader is the liveness side: with a
// miss threshold of 2 or more, under either election, a run given 30 s
// of calm after its faults ends with one leader in every component that
// needs one, whatever the dual-leader window on the way.
func TestEveryClusterEventuallyHasOneLeader(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t, 2)
		calm := int(30 * time.Second / DefaultStep)
		cfg.FaultsUntil = cfg.Steps
		cfg.Steps += calm
		res, err := Check(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Converged < 0 {
			t.Fatalf("no single leader per component at the end; violations: %v", res.Violations)
		}
	})
}

// TestGapSeenWhenTheSenderSpeaksAgain: a Replica counts its leader's link
// as lossy from the batch that shows the gap, however late it comes
// after the loss (here the sender sent the node nothing for a while),
// and the no-stuck-replica check allows the second timeout from then.
// TestSafetyHoldsEverywhere drew this configuration, and the check
// counted ten timeouts from the loss itself.
func TestGapSeenWhenTheSenderSpeaksAgain(t *testing.T) {
	hb, err := policy.NewHeartbeat(4*DefaultStep, 2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Check(Config{Nodes: 11, Seed: 0x2bf6, Steps: 621, Heartbeat: hb, Policy: policy.HighestTail,
		Faults: Faults(23), FaultRate: 0.2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Violations {
		if v.Invariant != InvSingleLeader {
			t.Errorf("%v", v)
		}
	}
}
