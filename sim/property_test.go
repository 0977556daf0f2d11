package sim

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/rolefsm/rolefsm/policy"
)

// TestHighestTailConvergesWhereverTheDetectorIsSound draws whole
// configurations (cluster size, heartbeat interval, miss threshold of 2
// or more, fault kinds and rate, run length, seed) and requires every
// invariant to hold under the highest-tail election. A miss threshold
// of 1 is left out: one late heartbeat then loses a live leader, and
// bench/sim-grid.sh shows both elections failing with it.
func TestHighestTailConvergesWhereverTheDetectorIsSound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		hb, err := policy.NewHeartbeat(
			time.Duration(rapid.IntRange(2, 20).Draw(t, "interval_steps"))*DefaultStep,
			rapid.IntRange(2, 6).Draw(t, "miss"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{
			Nodes:     rapid.IntRange(1, 12).Draw(t, "nodes"),
			Seed:      rapid.Uint64().Draw(t, "seed"),
			Steps:     rapid.IntRange(50, 800).Draw(t, "steps"),
			Heartbeat: hb,
			Faults:    Faults(rapid.IntRange(0, int(AllFaults)).Draw(t, "faults")),
			FaultRate: rapid.Float64Range(0.001, 0.2).Draw(t, "rate"),
		}
		res, err := Check(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() {
			t.Fatalf("%d violations, first %v", res.ViolationCount, res.Violations[0])
		}
	})
}
