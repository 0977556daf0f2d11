package rolefsmtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeT records what a failing helper reports.
type fakeT struct{ msgs []string }

func (f *fakeT) Errorf(format string, args ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Helper() {}

type fatal struct{ msg string }

func (f *fakeT) Fatalf(format string, args ...any) { panic(fatal{fmt.Sprintf(format, args...)}) }

// fatalOf runs fn and returns the message it died with, if any.
func fatalOf(fn func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = r.(fatal).msg
		}
	}()
	fn()
	return ""
}

func elected(t *testing.T, rec *Recorder) *rolefsm.Coordinator {
	c, err := rolefsm.NewCoordinator(rolefsm.WithName("orders"), rec.Option())
	require.NoError(t, err)
	for _, s := range []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon} {
		_, err := c.Fire(context.Background(), s)
		require.NoError(t, err)
	}
	_, err = c.Transition(context.Background(), rolefsm.Candidate, rolefsm.MissedHeartbeats) // rejected
	require.Error(t, err)
	return c
}

func TestRecorder(t *testing.T) {
	rec := NewRecorder()
	elected(t, rec)
	assert.Len(t, rec.Records(), 4)
	assert.Len(t, rec.Committed("orders"), 3)
	assert.Len(t, rec.Rejected(""), 1)
	assert.Empty(t, rec.Committed("payments"))
	assert.Equal(t, []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon}, rec.Signals("orders"))
	rec.Reset()
	assert.Empty(t, rec.Records())
}

// TestAssertionsPassAndFailReadably: each assertion passes on the truth
// and, on a falsehood, fails with a message that says what is and what
// was wanted.
func TestAssertionsPassAndFailReadably(t *testing.T) {
	rec := NewRecorder()
	c := elected(t, rec)
	assert.True(t, AssertRole(t, c, rolefsm.Leader))
	assert.True(t, AssertSignals(t, rec, "orders", rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon))
	assert.True(t, AssertCounters(t, c, Counters{Generation: 3, LeaderChanges: 1, ElectionThrash: 1, InvalidPairs: 1}))

	for _, tc := range []struct {
		run  func(f *fakeT) bool
		want string
	}{
		{func(f *fakeT) bool { return AssertRole(f, c, rolefsm.Idle) }, `channel "orders" is Leader (generation 3), want Idle`},
		{func(f *fakeT) bool { return AssertSignals(f, rec, "orders", rolefsm.CapabilitySelected) },
			"CapabilitySelected → MissedHeartbeats → ElectionWon\n\t            \twant\n\t            \t\tCapabilitySelected\n"},
		{func(f *fakeT) bool { return AssertSignals(f, rec, "payments", rolefsm.ElectionWon) }, "(nothing)"},
		{func(f *fakeT) bool {
			return AssertCounters(f, c, Counters{Generation: 2, LeaderChanges: 1, ElectionThrash: 1})
		},
			`channel "orders": generation 3, want 2; invalid pairs 1, want 0`},
	} {
		f := &fakeT{}
		assert.False(t, tc.run(f))
		require.Len(t, f.msgs, 1)
		assert.Contains(t, f.msgs[0], tc.want)
	}
}

// TestClusterElectsFailsOverAndHeals: the cluster a service's tests
// drive: one leader per channel; a stopped leader is replaced; a
// restarted node comes back as a Replica; a partition gives each side a
// leader, the heal one again. All on the fake clock: no sleeping.
func TestClusterElectsFailsOverAndHeals(t *testing.T) {
	rec := NewRecorder()
	c := NewCluster(t, 3, []string{"orders", "payments"}, WithCoordinatorOptions(rec.Option()))
	leaders := c.WaitForLeaders(2 * time.Second)
	// Time passes only when the test says so; a settled cluster stays so.
	before := c.Now()
	c.Advance(time.Second)
	assert.Equal(t, before.Add(time.Second), c.Now())
	assert.Equal(t, leaders, c.Leaders())
	first := leaders["orders"][0]
	require.Len(t, leaders["orders"], 1)
	AssertRole(t, c.Coordinator(first, "orders"), rolefsm.Leader)

	c.Stop(first)
	after := c.WaitForLeaders(2 * time.Second)["orders"]
	require.Len(t, after, 1)
	assert.NotEqual(t, first, after[0])

	c.Start(first)
	again := c.WaitForLeaders(2 * time.Second)
	assert.Equal(t, after, again["orders"], "the restarted node follows the leader it finds")
	AssertRole(t, c.Coordinator(first, "orders"), rolefsm.Replica)

	c.Partition(after[0])
	split := c.WaitForLeaders(2 * time.Second)
	assert.Len(t, split["orders"], 2, "a leader on each side")
	c.Heal()
	healed := c.WaitForLeaders(2 * time.Second)
	assert.Len(t, healed["orders"], 1)
	assert.NotEmpty(t, rec.Committed("orders"), "the coordinators' records were seen")

	// Records and the runtime read one clock: the fake one.
	for _, r := range rec.Records() {
		assert.False(t, r.At.Before(time.Unix(0, 0)) || r.At.After(c.Now()), "record at %v, cluster at %v", r.At, c.Now())
	}
}

// TestClusterIsDeterministic: the same script gives the same leaders at
// the same fake times.
func TestClusterIsDeterministic(t *testing.T) {
	run := func() (map[string][]replica.NodeID, time.Time) {
		c := NewCluster(t, 5, []string{"a", "b", "c"})
		c.WaitForLeaders(3 * time.Second)
		c.Stop(1)
		c.Partition(2, 3)
		l := c.WaitForLeaders(3 * time.Second)
		return l, c.Now()
	}
	l1, t1 := run()
	l2, t2 := run()
	assert.Equal(t, l1, l2)
	assert.Equal(t, t1, t2)
}

// TestClusterFailsReadably: a wait that cannot succeed in time says
// where every node stands; bad arguments say what is wrong.
func TestClusterFailsReadably(t *testing.T) {
	f := &fakeT{}
	c := NewCluster(f, 2, []string{"orders"})
	c.Stop(2)
	msg := fatalOf(func() { c.WaitForLeaders(50 * time.Millisecond) })
	assert.Contains(t, msg, "rolefsmtest: no leader agreed on every channel within 50ms of fake time:\n")
	assert.Contains(t, msg, "  node 1 (side 0): orders Replica following 0;\n  node 2: stopped\n")

	assert.Equal(t, "rolefsmtest: no node 7 (the cluster has 1 to 2)", fatalOf(func() { c.Stop(7) }))
	assert.Equal(t, `rolefsmtest: node 1 holds no channel "nosuch"`, fatalOf(func() { c.Coordinator(1, "nosuch") }))
	assert.Contains(t, fatalOf(func() { NewCluster(f, 0, []string{"a"}) }), "want at least one of each")
	assert.Contains(t, fatalOf(func() { NewCluster(f, 2, []string{"a"}, WithHeartbeat(-time.Second, 3)) }), "rolefsmtest: policy: bad heartbeat")
}

// TestClusterLeaveAndObserver: a node that leaves says goodbye, so the
// others elect again within a few ticks, not a heartbeat timeout; the
// observer hears every record with the node it came from.
func TestClusterLeaveAndObserver(t *testing.T) {
	seen := map[replica.NodeID]int{}
	c := NewCluster(t, 3, []string{"orders"}, WithObserver(func(node replica.NodeID, r rolefsm.Record) {
		if r.Err == nil {
			seen[node]++
		}
	}))
	first := c.WaitForLeaders(2 * time.Second)["orders"][0]
	left := c.Now()
	c.Leave(first)
	next := c.WaitForLeaders(2 * time.Second)["orders"]
	require.Len(t, next, 1)
	assert.NotEqual(t, first, next[0])
	assert.Less(t, c.Now().Sub(left), 100*time.Millisecond, "a goodbye, not a missed heartbeat timeout (300 ms)")
	AssertRole(t, c.Coordinator(first, "orders"), rolefsm.Idle)
	for id := replica.NodeID(1); id <= 3; id++ {
		assert.Positive(t, seen[id], "node %d's records", id)
	}
}
