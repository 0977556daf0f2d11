package rolefsm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/rolefsm/rolefsm"
)

func ExampleApply() {
	t, err := rolefsm.Apply(rolefsm.Candidate, rolefsm.Leader, rolefsm.ElectionWon)
	fmt.Println(t, err)

	_, err = rolefsm.Apply(rolefsm.Idle, rolefsm.Leader, rolefsm.ElectionWon)
	fmt.Println(err)
	// Output:
	// Candidate → Leader (ElectionWon) <nil>
	// invalid replica state transition: Idle → Leader
}

func ExampleInvalidPairError() {
	_, err := rolefsm.Apply(rolefsm.Replica, rolefsm.Leader, rolefsm.ElectionWon)
	var ip *rolefsm.InvalidPairError
	if errors.As(err, &ip) {
		fmt.Println("no signal reaches", ip.To, "from", ip.From)
	}
	fmt.Println(errors.Is(err, rolefsm.ErrInvalidPair))
	// Output:
	// no signal reaches Leader from Replica
	// true
}

func ExampleSignalMismatchError() {
	_, err := rolefsm.Apply(rolefsm.Leader, rolefsm.Idle, rolefsm.DiskPressureWithdraw)
	var mm *rolefsm.SignalMismatchError
	if errors.As(err, &mm) {
		fmt.Println(mm.From, "→", mm.To, "is reachable, but not under", mm.Signal)
	}
	fmt.Println(errors.Is(err, rolefsm.ErrSignalMismatch))
	// Output:
	// Leader → Idle is reachable, but not under DiskPressureWithdraw
	// true
}

// A coordinator with an audit logger and an observer. (The logger here
// drops the time attribute so that the output is stable.)
func ExampleCoordinator() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	var term atomic.Pointer[rolefsm.Lease] // the current term's lease
	c, err := rolefsm.NewCoordinator(
		rolefsm.WithName("orders"),
		rolefsm.WithLogger(logger),
		rolefsm.WithObserver(func(_ context.Context, r rolefsm.Record) {
			if r.Err == nil && r.To == rolefsm.Leader {
				l := r.Lease() // exact: taken from the record that began the term
				term.Store(&l) // an observer runs on the committing goroutine: never block in it
			}
		}),
	)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for _, sig := range []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon} {
		if _, err := c.Fire(ctx, sig); err != nil {
			panic(err)
		}
	}
	lease := *term.Load()
	// The append path: every write is fenced by the term's lease.
	appendEntry := func(entry string) {
		if !c.Holds(lease) {
			fmt.Println("refused", entry+": no longer the leader of generation", lease.Generation)
			return
		}
		fmt.Println("appended", entry, "under generation", lease.Generation)
	}
	appendEntry("a")
	if _, err := c.Transition(ctx, rolefsm.Candidate, rolefsm.MissedHeartbeats); err != nil {
		fmt.Println("rejected:", err)
	}
	appendEntry("b") // a rejection commits nothing: the term goes on
	if _, err := c.Fire(ctx, rolefsm.PeerLeaderObserved); err != nil {
		panic(err)
	}
	appendEntry("c") // deposed
	st := c.Stats()
	fmt.Println(st.Role, st.Generation, st.LeaderChanges, st.ElectionThrash, st.InvalidPairs)
	// Output:
	// level=INFO msg="role transition" name=orders from=Idle to=Replica signal=CapabilitySelected generation=1
	// level=INFO msg="role transition" name=orders from=Replica to=Candidate signal=MissedHeartbeats generation=2
	// level=INFO msg="role transition" name=orders from=Candidate to=Leader signal=ElectionWon generation=3
	// appended a under generation 3
	// level=WARN msg="role transition rejected" name=orders from=Leader to=Candidate signal=MissedHeartbeats generation=3 error="invalid replica state transition: Leader → Candidate"
	// rejected: invalid replica state transition: Leader → Candidate
	// appended b under generation 3
	// level=INFO msg="role transition" name=orders from=Leader to=Replica signal=PeerLeaderObserved generation=4
	// refused c: no longer the leader of generation 3
	// Replica 4 1 1 1
}

// Fencing the append path: take a lease on becoming Leader and check it
// before every write. A deposed leader's lease fails even if it has been
// elected again since.
func ExampleCoordinator_Lease() {
	ctx := context.Background()
	c, _ := rolefsm.NewCoordinator(rolefsm.WithInitialRole(rolefsm.Candidate))
	_, _ = c.Fire(ctx, rolefsm.ElectionWon)
	lease := c.Lease()
	fmt.Println(lease.Role, lease.Generation, c.Holds(lease))

	// A partition heals, this node concedes, then wins again.
	for _, sig := range []rolefsm.Signal{rolefsm.PeerLeaderObserved, rolefsm.MissedHeartbeats, rolefsm.ElectionWon} {
		_, _ = c.Fire(ctx, sig)
	}
	fmt.Println(c.Role(), c.Holds(lease), c.Lease().Generation)
	// Output:
	// Leader 1 true
	// Leader false 4
}
