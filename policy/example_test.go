package policy_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// Example shows a replica's loop: feed heartbeats into a Tracker, ask it whether the
// leader is lost, elect from its view, and fire the signals through
// the Coordinator. Time is passed in, here from a fixed start.
func Example() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }

	hb, _ := policy.NewHeartbeat(500*time.Millisecond, 3)
	tr := policy.NewTracker(2, hb, at(0))
	c, _ := rolefsm.NewCoordinator(rolefsm.WithInitialRole(rolefsm.Replica))

	tr.Heard(1, at(0), 40, true) // the leader, n1
	tr.Follow(1, at(0))
	tr.Heard(3, at(100), 41, false) // a replica ahead of us
	_ = tr.SampleRTT(3, 4*time.Millisecond)
	tr.Heard(3, at(1400), 41, false)

	fmt.Println("lost at 1.4 s:", tr.LeaderLost(at(1400)))
	fmt.Println("lost at 1.5 s:", tr.LeaderLost(at(1500)))
	ctx := context.Background()
	_, _ = c.Fire(ctx, rolefsm.MissedHeartbeats) // Replica → Candidate

	view := tr.Members(at(1500), 40, nil) // n1 is silent, so not eligible
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
