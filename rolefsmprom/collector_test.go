package rolefsmprom

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/rolefsm/rolefsm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ordersCoordinator is a Leader after three commits and two
// rejections, one of each kind.
func ordersCoordinator(t *testing.T, name string) *rolefsm.Coordinator {
	t.Helper()
	c, err := rolefsm.NewCoordinator(rolefsm.WithName(name))
	require.NoError(t, err)
	ctx := context.Background()
	for _, s := range []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon} {
		_, err := c.Fire(ctx, s)
		require.NoError(t, err)
	}
	_, err = c.Transition(ctx, rolefsm.Candidate, rolefsm.MissedHeartbeats) // invalid pair
	require.Error(t, err)
	_, err = c.Transition(ctx, rolefsm.Idle, rolefsm.DiskPressureWithdraw) // signal mismatch
	require.Error(t, err)
	return c
}

// ordersExposition: the transitions that fired have a series, the
// others none.
const ordersExposition = `
# HELP rolefsm_cold_start_elections_total Committed MissedHeartbeats transitions of a channel with no leader since it opened: first elections, not thrash.
# TYPE rolefsm_cold_start_elections_total counter
rolefsm_cold_start_elections_total{channel="orders"} 0
# HELP rolefsm_election_thrash_total Committed MissedHeartbeats transitions of a channel that had a leader: the leader was lost.
# TYPE rolefsm_election_thrash_total counter
rolefsm_election_thrash_total{channel="orders"} 1
# HELP rolefsm_generation Committed transitions so far: the fencing generation.
# TYPE rolefsm_generation gauge
rolefsm_generation{channel="orders"} 3
# HELP rolefsm_leader_changes_total Entries into the Leader role.
# TYPE rolefsm_leader_changes_total counter
rolefsm_leader_changes_total{channel="orders"} 1
# HELP rolefsm_observer_panics_total Panics recovered from observers and the audit log handler.
# TYPE rolefsm_observer_panics_total counter
rolefsm_observer_panics_total{channel="orders"} 0
# HELP rolefsm_rejected_transitions_total Rejected transition attempts, by error kind.
# TYPE rolefsm_rejected_transitions_total counter
rolefsm_rejected_transitions_total{channel="orders",kind="invalid_pair"} 1
rolefsm_rejected_transitions_total{channel="orders",kind="signal_mismatch"} 1
# HELP rolefsm_role 1 for the channel's current role, 0 for the others.
# TYPE rolefsm_role gauge
rolefsm_role{channel="orders",role="Candidate"} 0
rolefsm_role{channel="orders",role="Idle"} 0
rolefsm_role{channel="orders",role="Leader"} 1
rolefsm_role{channel="orders",role="Replica"} 0
# HELP rolefsm_transitions_total Committed role transitions, per permitted (from, to, signal) triple.
# TYPE rolefsm_transitions_total counter
rolefsm_transitions_total{channel="orders",from="Candidate",signal="ElectionWon",to="Leader"} 1
rolefsm_transitions_total{channel="orders",from="Idle",signal="CapabilitySelected",to="Replica"} 1
rolefsm_transitions_total{channel="orders",from="Replica",signal="MissedHeartbeats",to="Candidate"} 1
`

// ordersAllTransitions is the transitions family of ordersExposition
// with WithAllTransitions: every counted triple has a series, those
// that never fired at 0.
const ordersAllTransitions = `
# HELP rolefsm_transitions_total Committed role transitions, per permitted (from, to, signal) triple.
# TYPE rolefsm_transitions_total counter
rolefsm_transitions_total{channel="orders",from="Candidate",signal="CandidateDiskPressureWithdraw",to="Idle"} 0
rolefsm_transitions_total{channel="orders",from="Candidate",signal="ChannelClose",to="Idle"} 0
rolefsm_transitions_total{channel="orders",from="Candidate",signal="ElectionLost",to="Replica"} 0
rolefsm_transitions_total{channel="orders",from="Candidate",signal="ElectionWon",to="Leader"} 1
rolefsm_transitions_total{channel="orders",from="Idle",signal="CapabilitySelected",to="Replica"} 1
rolefsm_transitions_total{channel="orders",from="Leader",signal="ChannelClose",to="Idle"} 0
rolefsm_transitions_total{channel="orders",from="Leader",signal="GracefulRelinquish",to="Idle"} 0
rolefsm_transitions_total{channel="orders",from="Leader",signal="LeaderDiskPressureWithdraw",to="Idle"} 0
rolefsm_transitions_total{channel="orders",from="Leader",signal="PeerLeaderObserved",to="Replica"} 0
rolefsm_transitions_total{channel="orders",from="Replica",signal="ChannelClose",to="Idle"} 0
rolefsm_transitions_total{channel="orders",from="Replica",signal="DiskPressureWithdraw",to="Idle"} 0
rolefsm_transitions_total{channel="orders",from="Replica",signal="MissedHeartbeats",to="Candidate"} 1
`

func TestCollectorExposition(t *testing.T) {
	c := ordersCoordinator(t, "orders")
	col := NewCollector(c)
	require.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(ordersExposition)))
	problems, err := testutil.CollectAndLint(col)
	require.NoError(t, err)
	assert.Empty(t, problems)
	all := NewCollector(c, WithAllTransitions())
	require.NoError(t, testutil.CollectAndCompare(all, strings.NewReader(ordersAllTransitions), "rolefsm_transitions_total"))
	assert.Equal(t, 23, testutil.CollectAndCount(all), "and the other eleven series as without it")

	// Read at scrape time: a later commit shows at the next scrape.
	_, err = c.Fire(context.Background(), rolefsm.PeerLeaderObserved)
	require.NoError(t, err)
	require.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(`
# HELP rolefsm_generation Committed transitions so far: the fencing generation.
# TYPE rolefsm_generation gauge
rolefsm_generation{channel="orders"} 4
# HELP rolefsm_role 1 for the channel's current role, 0 for the others.
# TYPE rolefsm_role gauge
rolefsm_role{channel="orders",role="Candidate"} 0
rolefsm_role{channel="orders",role="Idle"} 0
rolefsm_role{channel="orders",role="Leader"} 0
rolefsm_role{channel="orders",role="Replica"} 1
# HELP rolefsm_transitions_total Committed role transitions, per permitted (from, to, signal) triple.
# TYPE rolefsm_transitions_total counter
rolefsm_transitions_total{channel="orders",from="Candidate",signal="ElectionWon",to="Leader"} 1
rolefsm_transitions_total{channel="orders",from="Idle",signal="CapabilitySelected",to="Replica"} 1
rolefsm_transitions_total{channel="orders",from="Leader",signal="PeerLeaderObserved",to="Replica"} 1
rolefsm_transitions_total{channel="orders",from="Replica",signal="MissedHeartbeats",to="Candidate"} 1
`), "rolefsm_generation", "rolefsm_role", "rolefsm_transitions_total"))
}

func TestCollectorNamespace(t *testing.T) {
	c := ordersCoordinator(t, "orders")
	require.NoError(t, testutil.CollectAndCompare(NewCollector(c, WithNamespace("myapp")), strings.NewReader(`
# HELP myapp_generation Committed transitions so far: the fencing generation.
# TYPE myapp_generation gauge
myapp_generation{channel="orders"} 3
`), "myapp_generation"))
	require.NoError(t, testutil.CollectAndCompare(NewCollector(c, WithNamespace("")), strings.NewReader(`
# HELP leader_changes_total Entries into the Leader role.
# TYPE leader_changes_total counter
leader_changes_total{channel="orders"} 1
`), "leader_changes_total"))
}

func TestManyCollectorsInOneRegistry(t *testing.T) {
	const n = 2000
	reg := prometheus.NewPedanticRegistry()
	coords := make([]*rolefsm.Coordinator, n)
	for i := range coords {
		c, err := rolefsm.NewCoordinator(rolefsm.WithName(fmt.Sprintf("ch-%04d", i)))
		require.NoError(t, err)
		coords[i] = c
		require.NoError(t, reg.Register(NewCollector(c)), "channel %d", i)
	}
	// A second collector for a channel already registered collides.
	dup, err := rolefsm.NewCoordinator(rolefsm.WithName("ch-0007"))
	require.NoError(t, err)
	var already prometheus.AlreadyRegisteredError
	assert.ErrorAs(t, reg.Register(NewCollector(dup)), &already)

	_, err = coords[42].Fire(context.Background(), rolefsm.CapabilitySelected)
	require.NoError(t, err)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "rolefsm_generation" {
			assert.Len(t, mf.GetMetric(), n)
			for _, m := range mf.GetMetric() {
				want := 0.0
				if m.GetLabel()[0].GetValue() == "ch-0042" {
					want = 1
				}
				assert.Equal(t, want, m.GetGauge().GetValue())
			}
		}
	}
}

func TestSetCapsCardinality(t *testing.T) {
	set := NewSet(WithMaxChannels(3))
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(set))
	ctx := context.Background()
	var coords []*rolefsm.Coordinator
	for i := 0; i < 5; i++ {
		c, err := rolefsm.NewCoordinator(rolefsm.WithName(fmt.Sprintf("ch-%d", i)))
		require.NoError(t, err)
		own, err := set.Add(c)
		require.NoError(t, err)
		assert.Equal(t, i < 3, own, "channel %d", i)
		coords = append(coords, c)
	}
	// ch-3 leads; ch-4 is a Replica: both folded into the overflow.
	for _, s := range []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon} {
		_, err := coords[3].Fire(ctx, s)
		require.NoError(t, err)
	}
	_, err := coords[4].Fire(ctx, rolefsm.CapabilitySelected)
	require.NoError(t, err)
	_, err = coords[4].Fire(ctx, rolefsm.ElectionWon) // rejected
	require.Error(t, err)

	require.NoError(t, testutil.CollectAndCompare(set, strings.NewReader(`
# HELP rolefsm_generation Committed transitions so far: the fencing generation.
# TYPE rolefsm_generation gauge
rolefsm_generation{channel="_overflow"} 4
rolefsm_generation{channel="ch-0"} 0
rolefsm_generation{channel="ch-1"} 0
rolefsm_generation{channel="ch-2"} 0
# HELP rolefsm_rejected_transitions_total Rejected transition attempts, by error kind.
# TYPE rolefsm_rejected_transitions_total counter
rolefsm_rejected_transitions_total{channel="_overflow",kind="invalid_pair"} 1
rolefsm_rejected_transitions_total{channel="_overflow",kind="signal_mismatch"} 0
rolefsm_rejected_transitions_total{channel="ch-0",kind="invalid_pair"} 0
rolefsm_rejected_transitions_total{channel="ch-0",kind="signal_mismatch"} 0
rolefsm_rejected_transitions_total{channel="ch-1",kind="invalid_pair"} 0
rolefsm_rejected_transitions_total{channel="ch-1",kind="signal_mismatch"} 0
rolefsm_rejected_transitions_total{channel="ch-2",kind="invalid_pair"} 0
rolefsm_rejected_transitions_total{channel="ch-2",kind="signal_mismatch"} 0
# HELP rolefsm_role 1 for the channel's current role, 0 for the others.
# TYPE rolefsm_role gauge
rolefsm_role{channel="_overflow",role="Candidate"} 0
rolefsm_role{channel="_overflow",role="Idle"} 0
rolefsm_role{channel="_overflow",role="Leader"} 1
rolefsm_role{channel="_overflow",role="Replica"} 1
rolefsm_role{channel="ch-0",role="Candidate"} 0
rolefsm_role{channel="ch-0",role="Idle"} 1
rolefsm_role{channel="ch-0",role="Leader"} 0
rolefsm_role{channel="ch-0",role="Replica"} 0
rolefsm_role{channel="ch-1",role="Candidate"} 0
rolefsm_role{channel="ch-1",role="Idle"} 1
rolefsm_role{channel="ch-1",role="Leader"} 0
rolefsm_role{channel="ch-1",role="Replica"} 0
rolefsm_role{channel="ch-2",role="Candidate"} 0
rolefsm_role{channel="ch-2",role="Idle"} 1
rolefsm_role{channel="ch-2",role="Leader"} 0
rolefsm_role{channel="ch-2",role="Replica"} 0
`), "rolefsm_generation", "rolefsm_rejected_transitions_total", "rolefsm_role"))
	problems, err := testutil.CollectAndLint(set)
	require.NoError(t, err)
	assert.Empty(t, problems)
	_, err = reg.Gather()
	require.NoError(t, err, "the pedantic registry accepts the set's output")

	// Series stay bounded: 3 channels of their own plus the overflow,
	// 11 series each, and a transition series for each triple that
	// fired (three, all folded into the overflow); 23 each with every
	// transition.
	assert.Equal(t, 4*11+3, testutil.CollectAndCount(set))
	require.NoError(t, testutil.CollectAndCompare(set, strings.NewReader(`
# HELP rolefsm_transitions_total Committed role transitions, per permitted (from, to, signal) triple.
# TYPE rolefsm_transitions_total counter
rolefsm_transitions_total{channel="_overflow",from="Candidate",signal="ElectionWon",to="Leader"} 1
rolefsm_transitions_total{channel="_overflow",from="Idle",signal="CapabilitySelected",to="Replica"} 2
rolefsm_transitions_total{channel="_overflow",from="Replica",signal="MissedHeartbeats",to="Candidate"} 1
`), "rolefsm_transitions_total"))
	all := NewSet(WithMaxChannels(3), WithAllTransitions())
	for _, c := range coords {
		_, err := all.Add(c)
		require.NoError(t, err)
	}
	assert.Equal(t, 4*23, testutil.CollectAndCount(all))

	// Duplicates and the reserved name are refused.
	dup, _ := rolefsm.NewCoordinator(rolefsm.WithName("ch-1"))
	_, err = set.Add(dup)
	assert.ErrorIs(t, err, ErrDuplicateChannel)
	res, _ := rolefsm.NewCoordinator(rolefsm.WithName(OverflowChannel))
	_, err = set.Add(res)
	assert.ErrorIs(t, err, ErrReservedChannel)
	_, err = set.Add(nil)
	assert.Error(t, err)
	assert.Equal(t, 5, set.Len())

	// Removing a channel frees its slot; the folded ones stay folded.
	assert.True(t, set.Remove(coords[1]))
	assert.False(t, set.Remove(coords[1]))
	assert.True(t, set.Remove(coords[4]))
	late, _ := rolefsm.NewCoordinator(rolefsm.WithName("late"))
	own, err := set.Add(late)
	require.NoError(t, err)
	assert.True(t, own)
	assert.Equal(t, 4, set.Len())
	require.NoError(t, testutil.CollectAndCompare(set, strings.NewReader(`
# HELP rolefsm_generation Committed transitions so far: the fencing generation.
# TYPE rolefsm_generation gauge
rolefsm_generation{channel="_overflow"} 3
rolefsm_generation{channel="ch-0"} 0
rolefsm_generation{channel="ch-2"} 0
rolefsm_generation{channel="late"} 0
`), "rolefsm_generation"))
}

func TestSetWithThousandsOfChannels(t *testing.T) {
	set := NewSet()
	for i := 0; i < 3000; i++ {
		c, err := rolefsm.NewCoordinator(rolefsm.WithName(fmt.Sprintf("ch-%d", i)))
		require.NoError(t, err)
		_, err = set.Add(c)
		require.NoError(t, err)
	}
	assert.Equal(t, (DefaultMaxChannels+1)*11, testutil.CollectAndCount(set), "1024 channels and the overflow, 11 series each: no transition has fired")
}

func TestNilCoordinator(t *testing.T) {
	reg := prometheus.NewRegistry()
	assert.ErrorContains(t, reg.Register(NewCollector(nil)), "nil Coordinator", "refused at registration")
	// An unchecked registration still fails every scrape, saying why.
	require.NoError(t, reg.Register(unchecked{NewCollector(nil)}))
	_, err := reg.Gather()
	assert.ErrorContains(t, err, "nil Coordinator")
	assert.False(t, NewSet().Remove(nil))
}

// unchecked registers a collector without its descriptions.
type unchecked struct{ prometheus.Collector }

func (unchecked) Describe(chan<- *prometheus.Desc) {}

// TestUnnamedCoordinator: a coordinator without a name is refused by a
// Set and at registration, with an error that says what to do, instead
// of colliding later.
func TestUnnamedCoordinator(t *testing.T) {
	c, err := rolefsm.NewCoordinator()
	require.NoError(t, err)
	_, err = NewSet().Add(c)
	require.ErrorIs(t, err, ErrUnnamedChannel)
	assert.ErrorContains(t, err, "rolefsm.WithName")
	reg := prometheus.NewRegistry()
	assert.ErrorContains(t, reg.Register(NewCollector(c)), "rolefsm.WithName")
	require.NoError(t, reg.Register(unchecked{NewCollector(c)}))
	_, err = reg.Gather()
	assert.ErrorContains(t, err, "rolefsm.WithName")
}

// TestSetSendsInRegistryOrder: a Set sends each family's series in the
// order the registry sorts them into (by label values), so that the
// registry's sort is a linear check, not n log n comparisons; a channel
// added after a scrape takes its place in that order.
func TestSetSendsInRegistryOrder(t *testing.T) {
	set := NewSet(WithMaxChannels(50), WithAllTransitions())
	add := func(name string) {
		c := ordersCoordinator(t, name)
		_, err := set.Add(c)
		require.NoError(t, err)
	}
	for i := 0; i < 60; i++ {
		add(fmt.Sprintf("ch-%02d", (i*37)%60)) // out of order; the last ten are folded
	}
	check := func(wantChannels int) {
		t.Helper()
		ch := make(chan prometheus.Metric, 10000)
		set.Collect(ch)
		close(ch)
		byFamily := map[string][]string{}
		for m := range ch {
			var out dto.Metric
			require.NoError(t, m.Write(&out))
			var values []string
			for _, lp := range out.GetLabel() {
				values = append(values, lp.GetValue())
			}
			key := m.Desc().String()
			byFamily[key] = append(byFamily[key], strings.Join(values, "\x00"))
		}
		require.Len(t, byFamily, 8)
		for family, series := range byFamily {
			assert.True(t, slices.IsSorted(series), "%s: %q", family, series)
		}
		gens := byFamily[set.d.generation.String()]
		assert.Len(t, gens, wantChannels+1, "the channels and the overflow")
	}
	check(50)
	set.Remove(set.own["ch-07"].c)
	add("a-first")
	check(50)
}

// TestOverflowSumsManyChannels folds enough coordinators that several
// goroutines read them, removes some from the middle, and checks the
// sums against the coordinators' own counts.
func TestOverflowSumsManyChannels(t *testing.T) {
	ctx := context.Background()
	set := NewSet(WithMaxChannels(1))
	var folded []*rolefsm.Coordinator
	for i := 0; i < 3*parallelSum+7; i++ {
		c, err := rolefsm.NewCoordinator(rolefsm.WithName(fmt.Sprintf("ch-%05d", i)))
		require.NoError(t, err)
		for _, sig := range []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon}[:i%4] {
			_, err := c.Fire(ctx, sig)
			require.NoError(t, err)
		}
		own, err := set.Add(c)
		require.NoError(t, err)
		if !own {
			folded = append(folded, c)
		}
	}
	for _, i := range []int{5, 100, 2 * parallelSum, len(folded) - 1} {
		require.True(t, set.Remove(folded[i]))
		assert.False(t, set.Remove(folded[i]), "removed once")
	}
	folded = slices.Delete(folded, len(folded)-1, len(folded))
	folded = slices.Delete(folded, 2*parallelSum, 2*parallelSum+1)
	folded = slices.Delete(folded, 100, 101)
	folded = slices.Delete(folded, 5, 6)
	require.Equal(t, len(folded)+1, set.Len())

	var want sample
	for _, c := range folded {
		want.add(c.Counts())
	}
	assert.Equal(t, want, sum(folded), "the parallel sum")
	assert.Equal(t, float64(want.generation), testutil.ToFloat64(gauge(t, set, "rolefsm_generation", OverflowChannel)))
	assert.Equal(t, want.roles[rolefsm.Leader], testutil.ToFloat64(gauge(t, set, "rolefsm_role", OverflowChannel, "Leader")))
}

// gauge finds one series of a Set's scrape.
func gauge(t *testing.T, set *Set, family string, values ...string) prometheus.Collector {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(set))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, lp := range m.GetLabel() {
				got = append(got, lp.GetValue())
			}
			if slices.Equal(got, values) {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "found"})
				g.Set(m.GetGauge().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no %s%v", family, values)
	return nil
}
