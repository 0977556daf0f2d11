package sim_test

import (
	"fmt"
	"os"

	"github.com/rolefsm/rolefsm/sim"
)

// ExampleRun scripts a leader crash on a quiet three-node cluster and
// prints the timeline: the first election, the crash at 5 s, and the
// failover once each replica's timeout (1.5 s after the last heartbeat
// it heard) fires. n3 stands first and elects n2, whose tail is as long
// and whose id is lower; n2 stands a step later and wins.
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
	//   6.50s  n3  Replica   → Candidate MissedHeartbeats
	//   6.55s  n2  Replica   → Candidate MissedHeartbeats
	//   6.55s  n3  Candidate → Replica   ElectionLost
	//   6.60s  n2  Candidate → Leader    ElectionWon
	// ok: true stale appends: 0
}
