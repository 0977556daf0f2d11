package policy_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// Example shows the pure rules a replica applies (package replica runs
// them for every channel of a node): the heartbeat rule says when the
// leader is lost, and an election over the members' view picks the next
// one. Time is passed in, here from a fixed start.
func Example() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }

	hb, _ := policy.NewHeartbeat(500*time.Millisecond, 3)
	lastClaim := at(0) // the leader, n1, last claimed office at 0
	fmt.Println("lost at 1.4 s:", hb.Silent(lastClaim, at(1400)))
	fmt.Println("lost at 1.5 s:", hb.Silent(lastClaim, at(1500)))

	c, _ := rolefsm.NewCoordinator(rolefsm.WithInitialRole(rolefsm.Replica))
	ctx := context.Background()
	_, _ = c.Fire(ctx, rolefsm.MissedHeartbeats) // Replica → Candidate

	// n2's view: itself, the silent leader, and n3, a replica ahead of
	// it with a 4 ms RTT.
	view := []policy.Member{
		{ID: 2, Healthy: true, HasRTT: true, Tail: 40},
		{ID: 1, Healthy: false, Tail: 40},
		{ID: 3, Healthy: true, RTT: 4 * time.Millisecond, HasRTT: true, Tail: 41},
	}
	for _, p := range policy.Policies() {
		out := p.Elect(2, view)
		fmt.Printf("%s: %v n%d\n", p.Name(), out.Result, out.Winner)
	}
	to, sig := policy.HighestTail.Elect(2, view).Transition()
	t, err := c.Transition(ctx, to, sig)
	fmt.Println(t, err)
	// Output:
	// lost at 1.4 s: false
	// lost at 1.5 s: true
	// tail: PeerWins n3
	// upstream: SelfWins n2
	// Candidate → Replica (ElectionLost) <nil>
}

// ExampleKeepLeadership resolves two leaders that hear each other.
func ExampleKeepLeadership() {
	fmt.Println(policy.KeepLeadership(1, 90, 2, 100)) // shorter tail: concede
	fmt.Println(policy.KeepLeadership(2, 100, 1, 90)) // longer tail: keep
	fmt.Println(policy.KeepLeadership(1, 90, 2, 90))  // equal: the lower id keeps
	// Output:
	// false
	// true
	// true
}

// ExampleDiskPressureSignal withdraws a node under the signal for its
// role, so dashboards can tell disk pressure from a close.
func ExampleDiskPressureSignal() {
	for _, r := range rolefsm.Roles() {
		sig, ok := policy.DiskPressureSignal(r)
		fmt.Println(r, sig, ok)
	}
	// Output:
	// Idle Signal(0) false
	// Replica DiskPressureWithdraw true
	// Candidate CandidateDiskPressureWithdraw true
	// Leader LeaderDiskPressureWithdraw true
}
