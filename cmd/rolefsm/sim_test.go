package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/sim"
)

// TestSimGolden pins the README's first command: its timeline and
// summary for seed 1 (go test ./cmd/rolefsm -update after a deliberate
// change to the simulator).
func TestSimGolden(t *testing.T) {
	code, out, errOut := runCLI("", "sim")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, errOut)
	checkGolden(t, "sim-seed1.txt", out)

	_, again, _ := runCLI("", "sim", "-seed", "1", "-nodes", "5", "-steps", "400", "-faults", "all", "-policy", "tail")
	assert.Equal(t, out, again, "the defaults are seed 1, 5 nodes, 400 steps, all faults, tail")
}

func TestSimQuietPrintsTheSummaryOnly(t *testing.T) {
	code, out, _ := runCLI("", "sim", "-q", "-seed", "5", "-policy", "UpStream", "-faults", "Partition,LOSS")
	require.Equal(t, 0, code, "names without regard to case")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 7, out)
	assert.Equal(t, "seed 5 · 5 nodes · 400 steps of 50ms (20.00s) · heartbeat 500ms, miss 3 · policy upstream · faults partition,loss until 15.00s", lines[0],
		"the header shows every setting the run used")
	assert.True(t, strings.HasPrefix(lines[1], "leaders per 500ms:  "), lines[1])
	assert.Len(t, strings.TrimPrefix(lines[1], "leaders per 500ms:  "), 40, "one character per 0.5 s of 20 s")
	assert.True(t, strings.HasPrefix(lines[6], "invariants:        ok ("), lines[6])
}

func TestSimSweep(t *testing.T) {
	code, out, errOut := runCLI("", "sim", "-sweep", "20", "-seed", "50", "-policy", "tail,upstream", "-workers", "2")
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "sweep of 20 seeds (50 to 69) · 5 nodes · 400 steps of 50ms · heartbeat 500ms, miss 3 · faults partition,kill,disk,close,loss until step 300 · each seed run twice\n")
	assert.Regexp(t, `(?m)^policy +tail +upstream$`, out)
	assert.Regexp(t, `(?m)^violating seeds +0 +0$`, out)
	assert.Regexp(t, `(?m)^stale appends +0 +0$`, out)
	assert.Contains(t, errOut, "sweep tail: 20/20 seeds, 0 violating\n")
	assert.Contains(t, errOut, "sweep upstream: 2/20 seeds, 0 violating\n", "progress every tenth")
	assert.Regexp(t, `sweep: 20 seeds × 2 policies in \S+\n$`, errOut)

	// The sweep's table is the same whatever the worker count.
	_, one, _ := runCLI("", "sim", "-sweep", "20", "-seed", "50", "-policy", "tail,upstream", "-workers", "1")
	assert.Equal(t, out, one)
}

// TestSimUsageErrors: every bad value is refused with its flag and its
// range, none is quietly replaced, and no message stutters a package
// name after the command's own prefix.
func TestSimUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-faults", "fire"}, `rolefsm sim: -faults: unknown fault "fire" (want partition, kill, disk, close, loss, all or none)`},
		{[]string{"-faults", "all,none"}, `rolefsm sim: -faults: faults "all,none": "all" stands alone, not in a list`},
		{[]string{"-faults", "kill,none"}, `"none" stands alone`},
		{[]string{"-policy", "raft"}, `rolefsm sim: -policy: unknown election policy "raft" (want tail or upstream)`},
		{[]string{"-policy", "tail,upstream"}, "a single run takes one policy; compare them with -sweep"},
		{[]string{"-nodes", "65"}, "rolefsm sim: -nodes 65: want 1 to 64"},
		{[]string{"-nodes", "0"}, "rolefsm sim: -nodes 0: want 1 to 64"},
		{[]string{"-steps", "0"}, "rolefsm sim: -steps 0: want 1 to 10000000"},
		{[]string{"-steps", "-1"}, "rolefsm sim: -steps -1: want 1 to 10000000"},
		{[]string{"-steps", "99999999"}, "rolefsm sim: -steps 99999999: want 1 to 10000000"},
		{[]string{"-heartbeat", "10ms"}, "rolefsm sim: -heartbeat 10ms: want at least 100ms"},
		{[]string{"-heartbeat", "-1s"}, "rolefsm sim: -heartbeat -1s: want at least 100ms"},
		{[]string{"-miss", "0"}, "rolefsm sim: -miss 0: want 1 or more"},
		{[]string{"-sweep", "-3"}, "rolefsm sim: -sweep -3: want a number of seeds, 1 or more (0: a single run)"},
		{[]string{"-sweep", "3", "-seed", "18446744073709551614"}, "rolefsm sim: -seed 18446744073709551614 -sweep 3: the last seed would pass 2^64-1"},
		{[]string{"-sweep", "2", "-workers", "-1"}, "rolefsm sim: -workers -1: want 1 or more (0: one per core)"},
		{[]string{"extra"}, `rolefsm sim: unexpected argument "extra"`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
	} {
		code, out, errOut := runCLI("", append([]string{"sim"}, tc.args...)...)
		assert.Equal(t, 2, code, "%v", tc.args)
		assert.Empty(t, out, "%v", tc.args)
		assert.Contains(t, errOut, tc.msg, "%v", tc.args)
		assert.NotRegexp(t, `rolefsm sim: (sim|policy|rolefsm): `, errOut, "%v: no stutter", tc.args)
	}
	// The last seed of a sweep may be 2^64-1 itself.
	code, _, errOut := runCLI("", "sim", "-sweep", "2", "-seed", "18446744073709551614", "-steps", "50", "-q")
	assert.NotEqual(t, 2, code, errOut)
	code, out, _ := runCLI("", "sim", "-h")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
}

// TestReproduceRunsTheSameSeed: the command a violation prints runs the
// same simulation again.
func TestReproduceRunsTheSameSeed(t *testing.T) {
	hb, err := policy.NewHeartbeat(0, 4)
	require.NoError(t, err)
	cfg := sim.Config{Seed: 77, Nodes: 7, Steps: 300, Faults: sim.Kill | sim.Loss, Policy: policy.Upstream, Heartbeat: hb}
	line := reproduce(cfg)
	assert.Equal(t, "rolefsm sim -seed 77 -nodes 7 -steps 300 -faults kill,loss -policy upstream -heartbeat 500ms -miss 4", line)

	args := strings.Fields(line)[1:]
	code, out, _ := runCLI("", args...)
	require.Equal(t, 0, code)
	var want strings.Builder
	res, err := sim.Run(cfg, &want)
	require.NoError(t, err)
	require.True(t, res.OK())
	assert.True(t, strings.HasPrefix(out, want.String()), "the same timeline")
}

func TestLeaderStrip(t *testing.T) {
	assert.Equal(t, ".12+", leaderStrip([]uint8{0, 0, 1, 0, 2, 1, 12}, 2))
	assert.Equal(t, "..", leaderStrip([]uint8{0, 0}, 0))
	assert.Equal(t, "", leaderStrip(nil, 10))
}

func TestSimSaysWhenARunIsTooShortToCheck(t *testing.T) {
	code, out, _ := runCLI("", "sim", "-q", "-steps", "40", "-nodes", "1")
	require.Equal(t, 1, code, "a run whose checks never ran is not ok")
	assert.Contains(t, out, "seed 1 · 1 node · 40 steps")
	assert.Contains(t, out, "faults stopped:    1.50s; one leader per component from 1.55s; not checked: the run ends before 3.70s\n")
	assert.Contains(t, out, "invariants:        not checked: the run is too short for its heartbeat settings (give more -steps)\n")
	assert.NotContains(t, out, "ok (")
}

// TestSimExitsOneOnAViolation uses a configuration bench/sim-grid.sh
// shows failing: a miss threshold of 1 under upstream's election.
func TestSimExitsOneOnAViolation(t *testing.T) {
	args := []string{"sim", "-q", "-seed", "1", "-miss", "1", "-policy", "upstream"}
	code, out, _ := runCLI("", args...)
	require.Equal(t, 1, code, out)
	assert.Regexp(t, `(?m)^invariants:        VIOLATED \(\d+\)$`, out)
	assert.Regexp(t, `(?m)^  single-leader at \S+ \(step \d+, cluster\): a component with more than one Leader`, out)
	assert.Contains(t, out, "reproduce with:    rolefsm sim -seed 1 -nodes 5 -steps 400 -faults partition,kill,disk,close,loss -policy upstream -heartbeat 500ms -miss 1\n")

	code, out, _ = runCLI("", "sim", "-sweep", "5", "-miss", "1", "-policy", "tail,upstream")
	require.Equal(t, 1, code, out)
	assert.Regexp(t, `(?m)^violating seeds +0 +[1-5]$`, out)
	assert.Contains(t, out, "\nseed 1 (policy upstream): ")
	assert.Contains(t, out, "  reproduce with: rolefsm sim -seed 1 -nodes 5 -steps 400 -faults partition,kill,disk,close,loss -policy upstream -heartbeat 500ms -miss 1\n")
}

// TestREADMESimOutputIsCurrent keeps the documentation's copies of the
// simulator's output true: the end of seed 1's timeline and summary (in
// README.md), the 1000-seed comparison of the two elections (run again
// here), and the grid and the evidence table recorded by
// bench/sim-grid.sh and bench/sim-evidence.sh (in docs/simulation.md).
func TestREADMESimOutputIsCurrent(t *testing.T) {
	blocksOf := func(path string) func(prefix string) string {
		text, err := os.ReadFile(filepath.Join("..", "..", path))
		require.NoError(t, err)
		blocks := regexp.MustCompile("(?s)```text\n(.*?)```").FindAllSubmatch(text, -1)
		return func(prefix string) string {
			t.Helper()
			for _, b := range blocks {
				if strings.HasPrefix(string(b[1]), prefix) || strings.Contains(string(b[1]), "\n"+prefix) {
					return string(b[1])
				}
			}
			t.Fatalf("%s has no text block with %q", path, prefix)
			return ""
		}
	}
	readme, simulation := blocksOf("README.md"), blocksOf(filepath.Join("docs", "simulation.md"))

	golden, err := os.ReadFile(filepath.Join("testdata", "sim-seed1.txt"))
	require.NoError(t, err)
	excerpt := readme("seed 1 · 5 nodes")
	assert.True(t, strings.HasSuffix(string(golden), excerpt),
		"README.md's seed-1 excerpt is stale: paste the end of go run ./cmd/rolefsm sim")

	code, out, _ := runCLI("", "sim", "-sweep", "1000", "-policy", "tail,upstream")
	require.Equal(t, 0, code)
	assert.Contains(t, out, simulation("policy  "),
		"docs/simulation.md's comparison is stale: paste go run ./cmd/rolefsm sim -sweep 1000 -policy tail,upstream")

	code, out, _ = runCLI("", "sim", "-sweep", "1000", "-policy", "tail", "-evidence", "own,peers")
	require.Equal(t, 0, code)
	assert.Contains(t, out, simulation("policy                           tail/own"),
		"docs/simulation.md's comparison of the evidence rules is stale: paste go run ./cmd/rolefsm sim -sweep 1000 -policy tail -evidence own,peers")

	grid, err := os.ReadFile(filepath.Join("..", "..", "bench", "recorded", "sim-grid.txt"))
	require.NoError(t, err)
	assert.Equal(t, string(grid), simulation("nodes  miss  heartbeat            tail       tail/own       upstream"), "docs/simulation.md's grid differs from bench/recorded/sim-grid.txt")

	evidence, err := os.ReadFile(filepath.Join("..", "..", "bench", "recorded", "sim-evidence-loss.txt"))
	require.NoError(t, err)
	assert.Equal(t, string(evidence), simulation("faults: loss, 1000 seeds"),
		"docs/simulation.md's evidence table differs from bench/recorded/sim-evidence-loss.txt")
}

// cancelOnWrite cancels a context at the first progress line.
type cancelOnWrite struct {
	cancel context.CancelFunc
	buf    *bytes.Buffer
}

func (w cancelOnWrite) Write(p []byte) (int, error) {
	w.cancel()
	return w.buf.Write(p)
}

// TestSweepInterruptedPrintsWhatRan: a sweep stopped by SIGINT (its
// context) prints the table of the seeds that ran, says it was
// interrupted, and exits 130.
func TestSweepInterruptedPrintsWhatRan(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errBuf bytes.Buffer
	w := bufio.NewWriter(&out)
	base := sim.Config{Seed: 1, Steps: 50, Faults: sim.AllFaults, Policy: policy.HighestTail}
	up := base
	up.Policy = policy.Upstream
	code := runSweep(ctx, []sim.Config{base, up}, 1000, 2, w, cancelOnWrite{cancel, &errBuf}, failTest(t))
	require.NoError(t, w.Flush())
	assert.Equal(t, exitInterrupted, code)
	assert.Regexp(t, `rolefsm sim: interrupted; seeds that ran: tail \d+, none else`, errBuf.String())
	assert.Regexp(t, `^INTERRUPTED: the table counts only the seeds that ran \(tail \d+\)\n`, out.String())
	assert.Contains(t, out.String(), "violating seeds")

	// Interrupted before any seed: no table.
	out.Reset()
	errBuf.Reset()
	done, stop := context.WithCancel(context.Background())
	stop()
	code = runSweep(done, []sim.Config{{Seed: 1, Steps: 50, Policy: policy.HighestTail}}, 10, 1, w, &errBuf, failTest(t))
	require.NoError(t, w.Flush())
	assert.Equal(t, exitInterrupted, code)
	assert.Empty(t, out.String())
	assert.Contains(t, errBuf.String(), "interrupted; seeds that ran: none else")
}

// TestSimLongRunStripStaysShort: the leaders strip of a long run bins
// whole intervals so that it stays within 100 characters, and says the
// bin it used.
func TestSimLongRunStripStaysShort(t *testing.T) {
	code, out, _ := runCLI("", "sim", "-q", "-steps", "20000")
	require.Equal(t, 0, code)
	lines := strings.Split(out, "\n")
	strip, ok := strings.CutPrefix(lines[1], "leaders per 10s:  ")
	require.True(t, ok, lines[1])
	assert.Len(t, strip, 100, "20,000 steps of 50 ms in bins of 10 s")
}

// TestSimLongRunPrintsProgress: a run of two million node-steps or more
// prints its progress on stderr, every tenth; a short one is silent.
func TestSimLongRunPrintsProgress(t *testing.T) {
	code, _, errOut := runCLI("", "sim", "-q", "-nodes", "10", "-steps", "200000", "-faults", "none")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	require.Len(t, lines, 10, errOut)
	assert.Equal(t, "rolefsm sim: 10% (40000 of 400000 steps, the run and its repetition)", lines[0])
	assert.Equal(t, "rolefsm sim: 100% (400000 of 400000 steps, the run and its repetition)", lines[9])

	_, _, errOut = runCLI("", "sim", "-q")
	assert.Empty(t, errOut)
}

// failTest is a usage-error reporter for a test in which none may occur.
func failTest(t *testing.T) func(error) int {
	return func(err error) int {
		t.Errorf("unexpected usage error: %v", err)
		return exitUsage
	}
}
