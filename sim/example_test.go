package sim_test

import (
	"fmt"
	"os"

	"github.com/rolefsm/rolefsm/sim"
)

// ExampleRun scripts a leader crash on a quiet three-node cluster and
// prints the timeline: the first election, the crash at 5 s, and the
// failover once each replica's timeout fires: 1.5 s after the latest
// heartbeat that it, or the other replica by its report, heard from the
// leader (n3 alone would stand a step earlier; n2's report that the
// leader's last heartbeat reached it later holds n3 back to n2's time).
// Both stand; n2, whose tail is as long and whose id is lower, wins.
func ExampleRun() {
	res, err := sim.Run(sim.Config{
		Nodes:  3,
		Steps:  200,
		Script: []sim.Event{{Step: 100, Kind: sim.Crash, Node: 1}},
	}, os.Stdout)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ok:", res.OK(), "stale appends:", res.StaleAppends)
	// Output:
	//   0.00s  n1  Idle      → Replica   CapabilitySelected
	//   0.00s  n2  Idle      → Replica   CapabilitySelected
	//   0.00s  n3  Idle      → Replica   CapabilitySelected
	//   1.50s  n1  Replica   → Candidate MissedHeartbeats
	//   1.50s  n2  Replica   → Candidate MissedHeartbeats
	//   1.50s  n3  Replica   → Candidate MissedHeartbeats
	//   1.55s  n1  Candidate → Leader    ElectionWon
	//   1.55s  n2  Candidate → Replica   ElectionLost
	//   1.55s  n3  Candidate → Replica   ElectionLost
	//   5.00s  --  crash n1
	//   6.55s  n2  Replica   → Candidate MissedHeartbeats
	//   6.55s  n3  Replica   → Candidate MissedHeartbeats
	//   6.60s  n2  Candidate → Leader    ElectionWon
	//   6.60s  n3  Candidate → Replica   ElectionLost
	// ok: true stale appends: 0
}
