package sim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// The defects below re-create upstream's, around a correct replica:
// each invariant must catch its own. They are hooks of the simulator,
// set only here.

var (
	// unfenced: leaders append without checking their lease.
	unfenced = hooks{unfenced: true}
	// stuckReplica: a Replica that follows nobody never times out
	// (upstream: no believed leader, no election).
	stuckReplica = hooks{skipTick: func(_ *run, n *node) bool {
		st := n.ch.Status()
		return st.Role == rolefsm.Replica && st.Leader == 0
	}}
	// stuckCandidate: a Candidate never runs its election.
	stuckCandidate = hooks{skipTick: func(_ *run, n *node) bool { return n.c.Role() == rolefsm.Candidate }}
	// wrongDisk: disk pressure withdraws under DiskPressureWithdraw
	// whatever the role, as upstream's fallback did.
	wrongDisk = hooks{withdraw: func(r *run, n *node) error {
		_, err := n.c.Transition(r.ctx, rolefsm.Idle, rolefsm.DiskPressureWithdraw)
		return err
	}}
)

func TestInvariantCatchesUnfencedAppends(t *testing.T) {
	stale, fenced := 0, 0
	for seed := uint64(1); seed <= 100; seed++ {
		cfg := Config{Seed: seed, Faults: AllFaults}
		res, err := simulate(cfg, nil, unfenced, nil)
		require.NoError(t, err)
		stale += res.StaleAppends
		if res.StaleAppends > 0 {
			assert.Equal(t, InvFencing, res.Violations[0].Invariant, "seed %d", seed)
		}
		res, err = Run(cfg, nil)
		require.NoError(t, err)
		fenced += res.Fenced
		assert.Zero(t, res.StaleAppends)
	}
	assert.Positive(t, stale, "without the lease check, deposed leaders append")
	assert.Equal(t, stale, fenced, "the lease refuses exactly those writes")
}

func TestInvariantCatchesStuckReplicas(t *testing.T) {
	res, err := simulate(Config{Seed: 1}, nil, stuckReplica, nil)
	require.NoError(t, err)
	require.False(t, res.OK())
	v := res.Violations[0]
	assert.Equal(t, InvReplica, v.Invariant)
	assert.Equal(t, 32, v.Step, "timeout (30 steps) plus one, after joining at step 0")
	assert.Contains(t, invariantsOf(res), InvSingleLeader, "and nobody ever leads")
}

func TestInvariantCatchesStuckCandidates(t *testing.T) {
	res, err := simulate(Config{Seed: 1}, nil, stuckCandidate, nil)
	require.NoError(t, err)
	require.False(t, res.OK())
	assert.Equal(t, InvCandidate, res.Violations[0].Invariant)
	assert.Equal(t, 31, res.Violations[0].Step, "Candidate at 30, still one at the end of 31")
}

func TestInvariantCatchesRejectedTransitions(t *testing.T) {
	cfg := Config{Seed: 1, Script: []Event{{Step: 100, Kind: Pressure, Node: 1}}}
	res, err := Run(cfg, nil)
	require.NoError(t, err)
	require.True(t, res.OK())
	require.Equal(t, rolefsm.Idle, res.Final[0].Role)
	assert.Equal(t, 1, res.Count(rolefsm.LeaderDiskPressureWithdraw))

	res, err = simulate(cfg, nil, wrongDisk, nil) // withdraw a Leader under the Replica's signal
	require.NoError(t, err)
	require.False(t, res.OK())
	v := res.Violations[0]
	assert.Equal(t, InvNoRejection, v.Invariant)
	assert.Equal(t, policy.NodeID(1), v.Node)
	assert.Equal(t, "transition Leader → Idle not permitted under signal DiskPressureWithdraw", v.Detail)
}

func TestInvariantCatchesInvalidRecords(t *testing.T) {
	cfg, err := Config{}.normalized()
	require.NoError(t, err)
	r := newRun(cfg, nil, hooks{})
	require.NoError(t, r.start())
	n := &r.nodes[0] // Replica, seq 1
	r.observe(n, rolefsm.Record{Transition: rolefsm.Transition{From: rolefsm.Idle, To: rolefsm.Leader, Signal: rolefsm.ElectionWon}, Generation: 2})
	r.observe(n, rolefsm.Record{Transition: rolefsm.Transition{From: rolefsm.Leader, To: rolefsm.Idle, Signal: rolefsm.ChannelClose}, Generation: 7})
	require.Len(t, r.res.Violations, 2)
	assert.Equal(t, InvValid, r.res.Violations[0].Invariant)
	assert.Equal(t, "committed Idle → Leader (ElectionWon) as #2 after Replica #1 (apply: invalid replica state transition: Idle → Leader)", r.res.Violations[0].Detail)
	assert.Equal(t, "committed Leader → Idle (ChannelClose) as #7 after Leader #2 (apply: <nil>)", r.res.Violations[1].Detail)
}

func TestInvariantCatchesInputsTheReplicaRefuses(t *testing.T) {
	cfg, err := Config{}.normalized()
	require.NoError(t, err)
	r := newRun(cfg, nil, hooks{})
	require.NoError(t, r.start())
	n := &r.nodes[0]
	n.setTail(r, 5)
	n.setTail(r, 4) // backwards: the replica refuses it
	require.Len(t, r.res.Violations, 1)
	assert.Equal(t, InvNoRejection, r.res.Violations[0].Invariant)
	assert.Equal(t, `tail: replica: tail moved backwards: channel "ch" from 5 to 4`, r.res.Violations[0].Detail)
}

// TestSettleWindowAsWritten checks the single-leader invariant from
// faults stopping plus the timeout plus one election step, as issue 6
// wrote it, instead of Settle's extra election round. The highest-tail
// election holds it on all of seeds 1–1000; upstream's, whose
// Candidates elect themselves and meet in the tiebreak a heartbeat
// later, breaks it on a few (docs/simulation.md says how many), each
// of which breaks nothing else and passes with the full round.
func TestSettleWindowAsWritten(t *testing.T) {
	strict := hooks{strictSettle: true}
	cfg := Config{Seed: 1, Faults: AllFaults, Policy: policy.HighestTail}
	s, err := sweepWith(context.Background(), cfg, 1000, SweepOptions{}, strict)
	require.NoError(t, err)
	assert.Empty(t, s.Violating)

	cfg.Policy = policy.Upstream
	s, err = sweepWith(context.Background(), cfg, 1000, SweepOptions{}, strict)
	require.NoError(t, err)
	require.NotEmpty(t, s.Violating, "upstream's election needs the extra round")
	t.Logf("upstream breaks the window as written on %d seeds of 1000", len(s.Violating))
	for _, v := range s.Violating {
		c := cfg
		c.Seed = v.Config.Seed
		res, err := simulate(c, nil, strict, nil)
		require.NoError(t, err)
		assert.Equal(t, map[string]int{InvSingleLeader: res.ViolationCount}, res.ByInvariant, "seed %d", c.Seed)
		res, err = Run(c, nil)
		require.NoError(t, err)
		assert.True(t, res.OK(), "seed %d", c.Seed)
	}
}

// TestTiebreakDriftsWhileBothLeadersAppend pins a finding of
// bench/sim-grid.sh: two leaders that both append each compare their
// own live tail with the other's tail as of the heartbeat received, so
// both can keep office for more than one heartbeat round, past Settle.
// This is the one seed of the grid (bench/recorded/sim-grid.txt) that
// fails with a miss threshold of 2 or 3: under upstream's election, with
// its own-silence rule. (Before followers heard a Close or a withdrawal
// at once, and before the replica set's reports, there were six, one of
// them the highest-tail election's.) It is a dual-leader window that is
// resolved late, not never; with leaders that do not append, the same
// run (same faults) converges in time.
func TestTiebreakDriftsWhileBothLeadersAppend(t *testing.T) {
	for _, tc := range []struct {
		seed   uint64
		nodes  int
		miss   int
		ms     time.Duration
		policy policy.Policy
	}{
		{65, 5, 2, 100, policy.Upstream},
	} {
		hb, err := policy.NewHeartbeat(tc.ms*time.Millisecond, tc.miss)
		require.NoError(t, err)
		cfg := Config{Seed: tc.seed, Nodes: tc.nodes, Heartbeat: hb, Policy: tc.policy, Faults: AllFaults}
		res, err := Run(cfg, nil)
		require.NoError(t, err)
		require.False(t, res.OK(), "%+v", tc)
		assert.Equal(t, map[string]int{InvSingleLeader: res.ViolationCount}, res.ByInvariant, "%+v", tc)
		for _, v := range res.Violations {
			assert.Contains(t, v.Detail, "more than one Leader", "%+v", tc)
		}
		assert.Positive(t, res.Count(rolefsm.PeerLeaderObserved), "%+v", tc)
		assert.GreaterOrEqual(t, res.Converged, 0, "%+v: resolved late, not never", tc)

		res, err = simulate(cfg, nil, hooks{quietLeaders: true}, nil)
		require.NoError(t, err)
		assert.True(t, res.OK(), "%+v: %v", tc, res.Violations)
	}
}
