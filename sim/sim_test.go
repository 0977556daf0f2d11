package sim

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSameSeedSameTrace(t *testing.T) {
	for _, p := range policy.Policies() {
		cfg := Config{Seed: 9, Faults: AllFaults, Policy: p}
		var a, b bytes.Buffer
		ra, err := Run(cfg, &a)
		require.NoError(t, err)
		rb, err := Run(cfg, &b)
		require.NoError(t, err)
		require.Positive(t, a.Len())
		assert.Equal(t, a.String(), b.String(), "byte-identical traces")
		assert.Equal(t, ra, rb)

		cfg.Seed = 10
		var c bytes.Buffer
		rc, err := Run(cfg, &c)
		require.NoError(t, err)
		assert.NotEqual(t, a.String(), c.String(), "another seed, another run")
		assert.NotEqual(t, ra.Digest, rc.Digest)

		// The trace does not change the run.
		rn, err := Run(Config{Seed: 9, Faults: AllFaults, Policy: p}, nil)
		require.NoError(t, err)
		assert.Equal(t, ra.Digest, rn.Digest)
	}
}

func TestCheckReportsADifferingRerun(t *testing.T) {
	a, err := Run(Config{Seed: 3, Faults: AllFaults}, nil)
	require.NoError(t, err)
	b := *a
	assert.Empty(t, differs(a, &b))
	b.Digest++
	assert.Contains(t, differs(a, &b), "trace digest")
	b = *a
	b.Leaders = append([]uint8(nil), a.Leaders...)
	b.Leaders[7]++
	assert.Equal(t, "leader counts differ", differs(a, &b))
}

func TestSweepFindsNoViolation(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for _, p := range policy.Policies() {
		s, err := RunSweep(context.Background(), Config{Seed: 1, Faults: AllFaults, Policy: p}, seeds, SweepOptions{})
		require.NoError(t, err)
		for _, r := range s.Violating {
			t.Errorf("policy %s seed %d: %v", p.Name(), r.Config.Seed, r.Violations)
		}
		assert.Equal(t, seeds, s.Seeds)
		assert.Zero(t, s.StaleAppends)
		assert.Zero(t, s.NotConverged)
		assert.Positive(t, s.Elections)
		assert.Positive(t, s.Fenced, "leaders lost office with writes in flight, and the lease refused them")
	}
}

func TestSweepIsDeterministicAcrossWorkerCounts(t *testing.T) {
	cfg := Config{Seed: 100, Faults: AllFaults, Steps: 200}
	one, err := RunSweep(context.Background(), cfg, 40, SweepOptions{Workers: 1})
	require.NoError(t, err)
	four, err := RunSweep(context.Background(), cfg, 40, SweepOptions{Workers: 4})
	require.NoError(t, err)
	assert.Equal(t, one, four)
}

func TestSweepProgressAndCancel(t *testing.T) {
	var calls []int
	_, err := RunSweep(context.Background(), Config{Steps: 50}, 20, SweepOptions{
		Workers:  3,
		Progress: func(done, _ int) { calls = append(calls, done) },
	})
	require.NoError(t, err)
	assert.Len(t, calls, 20)
	assert.Equal(t, 20, calls[19])

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := RunSweep(ctx, Config{}, 1000, SweepOptions{})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, s.Seeds, "cancelled before any seed: an empty sweep")

	// Cancelled on the way: the seeds that completed are counted in.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	s, err = RunSweep(ctx, Config{Steps: 50}, 1000, SweepOptions{Workers: 2, Progress: func(done, _ int) {
		if done == 5 {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.GreaterOrEqual(t, s.Seeds, 5)
	assert.Less(t, s.Seeds, 1000)
	assert.Positive(t, s.Transitions)

	_, err = RunSweep(context.Background(), Config{}, 0, SweepOptions{})
	require.ErrorIs(t, err, ErrBadConfig)
}

// TestUpstreamKeepsTwoLeadersUnderOneWayLoss: the single-leader
// invariant is not a formality. With upstream's election, a node that
// cannot hear the leader elects itself; the leader outranks it in the
// tiebreak but its heartbeats never arrive, so two leaders stay.
func TestUpstreamKeepsTwoLeadersUnderOneWayLoss(t *testing.T) {
	script := []Event{{Step: 100, Kind: Lossy, Node: 2, Peer: 3, Rate: 1}} // n2 leads under upstream, seed 42
	res, err := Run(Config{Seed: 42, Policy: policy.Upstream, Script: script}, nil)
	require.NoError(t, err)
	require.False(t, res.OK())
	assert.Equal(t, InvSingleLeader, res.Violations[0].Invariant)
	assert.Equal(t, res.Settle, res.Violations[0].Step)

	res, err = Run(Config{Seed: 42, Policy: policy.HighestTail, Script: script}, nil)
	require.NoError(t, err)
	assert.True(t, res.OK(), "%v", res.Violations)
}

func invariantsOf(res *Result) []string {
	var names []string
	for _, v := range res.Violations {
		names = append(names, v.Invariant)
	}
	return names
}

func TestStepsDoNotAllocate(t *testing.T) {
	for _, nodes := range []int{5, 64} {
		r := settled(t, nodes, 1000)
		require.Equal(t, uint8(1), r.res.Leaders[399], "settled")
		allocs := testing.AllocsPerRun(500, func() {
			r.tick()
			r.step++
		})
		assert.Zero(t, allocs, "%d nodes", nodes)
		assert.True(t, r.res.OK())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		msg string
	}{
		{Config{Nodes: 65}, "nodes 65, want 1 to 64"},
		{Config{Nodes: -1}, "nodes -1, want 1 to 64"},
		{Config{Steps: -5}, "steps -5, want 1 to 10000000"},
		{Config{Step: -time.Millisecond}, "step -1ms, want at least 1ms"},
		{Config{Step: time.Millisecond * 600}, "heartbeat interval 500ms is shorter than a step (600ms)"},
		{Config{FaultRate: 1.5}, "fault rate 1.5, want 0 to 1"},
		{Config{FaultsUntil: 401}, "faults until step 401, want 0 to 400"},
		{Config{Faults: 0x80}, "unknown faults Faults(0x80)"},
		{Config{Script: []Event{{Step: 400, Kind: Heal}}}, "script event 0 (heal at step 400): step 400, want 0 to 399"},
		{Config{Script: []Event{{Kind: Cut}}}, "script event 0 (cut at step 0): side of 0 nodes, want 1 to 4"},
		{Config{Script: []Event{{Kind: Cut, Side: []policy.NodeID{1, 2, 3, 4, 5}}}}, "script event 0 (cut at step 0): side of 5 nodes, want 1 to 4"},
		{Config{Script: []Event{{Kind: Cut, Side: []policy.NodeID{2, 2}}}}, "script event 0 (cut at step 0): node 2 twice in the side"},
		{Config{Script: []Event{{Kind: Cut, Side: []policy.NodeID{0}}}}, "script event 0 (cut at step 0): node 0, want 1 to 5"},
		{Config{Script: []Event{{Kind: LinkDown, Node: 1, Peer: 1}}}, "script event 0 (link-down at step 0): a link needs two nodes, got 1 twice"},
		{Config{Script: []Event{{Kind: Lossy, Node: 1, Peer: 2, Rate: 2}}}, "script event 0 (lossy at step 0): rate 2, want 0 to 1"},
		{Config{Script: []Event{{Kind: Crash, Node: 9}}}, "script event 0 (crash at step 0): node 9, want 1 to 5"},
		{Config{Script: []Event{{Kind: 99}}}, "script event 0 (EventKind(99) at step 0): unknown kind EventKind(99)"},
		{Config{Script: []Event{{Step: 5, Kind: Heal}, {Step: 4, Kind: Heal}}}, "script event 1 at step 4 comes before event 0 at step 5"},
	} {
		res, err := Run(tc.cfg, nil)
		require.ErrorIs(t, err, ErrBadConfig, tc.msg)
		assert.EqualError(t, err, "sim: bad configuration: "+tc.msg)
		assert.Nil(t, res)
	}
}

func TestTraceWriteErrors(t *testing.T) {
	boom := errors.New("disk full")
	_, err := Run(Config{}, failingWriter{boom})
	require.ErrorIs(t, err, boom)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Faults
		str  string
	}{
		{"all", AllFaults, "partition,kill,disk,close,loss"},
		{"none", 0, "none"},
		{"", 0, "none"},
		{"loss,kill", Loss | Kill, "kill,loss"},
		{"partition", Partition, "partition"},
	} {
		f, err := ParseFaults(tc.in)
		require.NoError(t, err)
		assert.Equal(t, tc.want, f)
		assert.Equal(t, tc.str, f.String())
		back, err := ParseFaults(f.String())
		require.NoError(t, err)
		assert.Equal(t, f, back)
	}
	_, err := ParseFaults("kill,fire")
	assert.EqualError(t, err, `sim: unknown fault "fire" (want partition, kill, disk, close, loss, all or none)`)
	assert.Equal(t, "disk,Faults(0x40)", (Disk | 0x40).String())
	assert.Equal(t, "EventKind(0)", EventKind(0).String())
}

func TestViolationString(t *testing.T) {
	v := Violation{Invariant: InvCandidate, Step: 31, At: 31 * DefaultStep, Node: 2, Detail: "Candidate since step 30"}
	assert.Equal(t, "no-stuck-candidate at 1.55s (step 31, n2): Candidate since step 30", v.String())
	v.Node = 0
	assert.Contains(t, v.String(), "(step 31, cluster)")
}

// TestCheckProgress: progress rises to both runs' steps, and the result
// is Check's.
func TestCheckProgress(t *testing.T) {
	cfg := Config{Seed: 3, Steps: 300, Faults: AllFaults}
	var seen []int
	res, err := CheckProgress(cfg, nil, func(done, total int) {
		assert.Equal(t, 600, total)
		seen = append(seen, done)
	})
	require.NoError(t, err)
	require.NotEmpty(t, seen)
	assert.True(t, slices.IsSorted(seen), "%v", seen)
	assert.Equal(t, 600, seen[len(seen)-1])
	assert.Len(t, seen, 200, "every hundredth of each run")
	want, err := Check(cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, want.Digest, res.Digest)
	assert.Equal(t, want.OK(), res.OK())
}
