package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/sim"
)

const simSynopsis = "sim [-nodes 5] [-seed N] [-steps 400] [-faults partition,kill,disk,close,loss] [-policy tail|upstream] [-evidence peers|own] [-sweep N]"

func runSim(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sim", simSynopsis, stderr)
	nodes := fs.Int("nodes", sim.DefaultNodes, "cluster size (1 to 64)")
	seed := fs.Uint64("seed", 1, "the run's seed; with -sweep, the first seed")
	steps := fs.Int("steps", sim.DefaultSteps, "steps to run, of 50ms of virtual time each")
	faults := fs.String("faults", "all", "fault kinds to inject at random: a comma list of partition, kill, disk, close, loss; or all, none")
	pol := fs.String("policy", "tail", "election policy: tail (highest tail, then lowest id) or upstream (lowest RTT, then lowest id); with -sweep, a comma list to compare")
	evid := fs.String("evidence", "", "what a Replica weighs before it stands: peers (the replica set's reports) or own (its own silence, upstream's rule); default peers, own with -policy upstream; with -sweep, a comma list to compare")
	interval := fs.Duration("heartbeat", policy.DefaultInterval, "heartbeat interval (at least 100ms)")
	miss := fs.Int("miss", policy.DefaultMissThreshold, "missed heartbeats after which the leader is lost")
	sweep := fs.Int("sweep", 0, "run this many seeds across all cores and report violating seeds")
	workers := fs.Int("workers", 0, "with -sweep, seeds run in parallel (default: GOMAXPROCS)")
	quiet := fs.Bool("q", false, "print the summary only, not the timeline")
	format := fs.String("format", "text", "output: text (the timeline and the summary) or svg (the run drawn as swim lanes; the summary goes to stderr)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	usageErr := func(err error) int { return usageError(fs, err) }
	switch {
	case *format != "text" && *format != "svg":
		return usageErr(fmt.Errorf("-format %q: want text or svg", *format))
	case *format == "svg" && (*sweep > 0 || *quiet):
		return usageErr(fmt.Errorf("-format svg draws a single run: not with -sweep or -q"))
	}
	// Every value is checked here, with its flag and its range: none is
	// quietly replaced by a default or clamped.
	switch {
	case *nodes < 1 || *nodes > sim.MaxNodes:
		return usageErr(fmt.Errorf("-nodes %d: want 1 to %d", *nodes, sim.MaxNodes))
	case *steps < 1 || *steps > maxSteps:
		return usageErr(fmt.Errorf("-steps %d: want 1 to %d", *steps, maxSteps))
	case *interval < policy.MinInterval:
		return usageErr(fmt.Errorf("-heartbeat %v: want at least %v", *interval, policy.MinInterval))
	case *miss < 1:
		return usageErr(fmt.Errorf("-miss %d: want 1 or more", *miss))
	case *sweep < 0:
		return usageErr(fmt.Errorf("-sweep %d: want a number of seeds, 1 or more (0: a single run)", *sweep))
	case *sweep > 0 && *seed > math.MaxUint64-uint64(*sweep-1):
		return usageErr(fmt.Errorf("-seed %d -sweep %d: the last seed would pass 2^64-1", *seed, *sweep))
	case *workers < 0:
		return usageErr(fmt.Errorf("-workers %d: want 1 or more (0: one per core)", *workers))
	}
	f, err := sim.ParseFaults(*faults)
	if err != nil {
		return usageErr(fmt.Errorf("-faults: %w", err))
	}
	hb, err := policy.NewHeartbeat(*interval, *miss)
	if err != nil {
		return usageErr(err)
	}
	var policies []policy.Policy
	for _, name := range strings.Split(*pol, ",") {
		p, err := policy.ParsePolicy(strings.ToLower(strings.TrimSpace(name)))
		if err != nil {
			return usageErr(fmt.Errorf("-policy: %w", err))
		}
		policies = append(policies, p)
	}
	if len(policies) > 1 && *sweep == 0 {
		return usageErr(fmt.Errorf("-policy %s: a single run takes one policy; compare them with -sweep", *pol))
	}
	evidences := []replica.Evidence{replica.DefaultEvidence}
	if *evid != "" {
		evidences = evidences[:0]
		for _, name := range strings.Split(*evid, ",") {
			e, err := replica.ParseEvidence(strings.ToLower(strings.TrimSpace(name)))
			if err != nil {
				return usageErr(fmt.Errorf("-evidence: %w", err))
			}
			evidences = append(evidences, e)
		}
	}
	if len(evidences) > 1 && *sweep == 0 {
		return usageErr(fmt.Errorf("-evidence %s: a single run takes one; compare them with -sweep", *evid))
	}
	cfg := sim.Config{Nodes: *nodes, Seed: *seed, Steps: *steps, Heartbeat: hb, Policy: policies[0], Evidence: evidences[0], Faults: f}
	var variants []sim.Config
	for _, p := range policies {
		for _, e := range evidences {
			v := cfg
			v.Policy, v.Evidence = p, e
			variants = append(variants, v)
		}
	}

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	if *sweep > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return runSweep(ctx, variants, *sweep, *workers, out, stderr, usageErr)
	}
	if *format == "svg" {
		return runSVG(cfg, out, stderr, usageErr)
	}
	return runOne(cfg, *quiet, out, stderr, usageErr)
}

// runSVG draws one run as SVG on out; the summary goes to stderr.
func runSVG(cfg sim.Config, out *bufio.Writer, stderr io.Writer, usageErr func(error) int) int {
	var trace, summary bytes.Buffer
	sw := bufio.NewWriter(&summary)
	code := runOne(cfg, false, sw, stderr, usageErr, &trace)
	_ = sw.Flush()
	if code == exitUsage {
		return code
	}
	res, err := sim.Run(cfg, nil) // the same run again (runs are reproducible), for its Result
	if err != nil {
		return usageErr(err)
	}
	if err := renderSVG(out, trace.String(), res); err != nil {
		fmt.Fprintln(stderr, "rolefsm sim:", err)
		return exitRejected
	}
	_, _ = io.Copy(stderr, &summary)
	return code
}

// usageErr reports a configuration the simulator refuses, as a usage
// error. With traceTo, the timeline goes there rather than to out.
func runOne(cfg sim.Config, quiet bool, out *bufio.Writer, stderr io.Writer, usageErr func(error) int, traceTo ...io.Writer) int {
	var trace io.Writer = out
	if quiet {
		trace = nil
	}
	if len(traceTo) > 0 {
		trace = traceTo[0]
	}
	// A long run says it is alive: every tenth, on stderr.
	var progress func(done, total int)
	if cfg.Steps*max(cfg.Nodes, 1) >= longRun {
		progress = func(done, total int) {
			if tenth := max(total/10, 1); done%tenth == 0 || done == total {
				fmt.Fprintf(stderr, "rolefsm sim: %d%% (%d of %d steps, the run and its repetition)\n", done*100/total, done, total)
			}
		}
	}
	res, err := sim.CheckProgress(cfg, trace, progress)
	if err != nil {
		return usageErr(err)
	}
	c := res.Config
	if !quiet && len(traceTo) == 0 {
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "seed %d · %d %s · %d steps of %v (%s) · heartbeat %v, miss %d · policy %s · faults %v",
		c.Seed, c.Nodes, plural(c.Nodes, "node", "nodes"), c.Steps, c.Step, fmtDur(res.TimeOf(c.Steps)),
		c.Heartbeat.Interval(), c.Heartbeat.MissThreshold(), variant(c), c.Faults)
	if res.Calm > 0 {
		fmt.Fprintf(out, " until %s", fmtDur(res.TimeOf(res.Calm)))
	}
	fmt.Fprintln(out)
	// One character per heartbeat interval, or per as many intervals as
	// keep the strip within maxStrip characters on a long run.
	bucket := max(int(c.Heartbeat.Interval()/c.Step), 1)
	if per := (len(res.Leaders) + maxStrip - 1) / maxStrip; per > bucket {
		bucket = (per + bucket - 1) / bucket * bucket // whole intervals
	}
	fmt.Fprintf(out, "leaders per %v:  %s\n", time.Duration(bucket)*c.Step, leaderStrip(res.Leaders, bucket))
	fmt.Fprintf(out, "transitions:       %d (elections %d, leader changes %d, thrash %d, cold starts %d, concessions %d)\n",
		res.Transitions, res.Elections, res.LeaderChanges, res.Thrash, res.ColdStarts, res.Concessions)
	fmt.Fprintf(out, "dual-leader steps: %d of %d; leaderless steps: %d\n", res.DualLeaderSteps, c.Steps, res.LeaderlessSteps)
	fmt.Fprintf(out, "appends:           %d landed, %d fenced by a lost lease, %d stale\n", res.Appends, res.Fenced, res.StaleAppends)
	conv := "one leader per component: not reached"
	if res.Converged >= 0 {
		conv = "one leader per component from " + fmtDur(res.TimeOf(res.Converged))
	}
	checked := "checked from " + fmtDur(res.TimeOf(res.Settle))
	if res.Settle >= c.Steps {
		checked = "not checked: the run ends before " + fmtDur(res.TimeOf(res.Settle))
	}
	fmt.Fprintf(out, "faults stopped:    %s; %s; %s\n", fmtDur(res.TimeOf(res.Calm)), conv, checked)
	if res.OK() && res.Settle >= c.Steps {
		// Nothing failed, but the bounded checks never ran: not "ok".
		fmt.Fprintf(out, "invariants:        not checked: the run is too short for its heartbeat settings (give more -steps)\n")
		return exitRejected
	}
	if res.OK() {
		fmt.Fprintf(out, "invariants:        ok (%s)\n", strings.Join(invariants, ", "))
		return exitOK
	}
	fmt.Fprintf(out, "invariants:        VIOLATED (%d)\n", res.ViolationCount)
	for _, v := range res.Violations {
		fmt.Fprintf(out, "  %v\n", v)
	}
	fmt.Fprintf(out, "reproduce with:    %s\n", reproduce(c))
	return exitRejected
}

var invariants = []string{sim.InvValid, sim.InvNoRejection, sim.InvSingleLeader, sim.InvCandidate, sim.InvReplica, sim.InvFencing, sim.InvReproducible}

func runSweep(ctx context.Context, variants []sim.Config, seeds, workers int, out *bufio.Writer, stderr io.Writer,
	usageErr func(error) int) int {
	var sweeps []*sim.Sweep
	interrupted := false
	start := time.Now()
	for _, cfg := range variants {
		name := variant(cfg)
		tenth := max(seeds/10, 1)
		s, err := sim.RunSweep(ctx, cfg, seeds, sim.SweepOptions{
			Workers: workers,
			Progress: func(done, violating int) {
				if done%tenth == 0 || done == seeds {
					fmt.Fprintf(stderr, "sweep %s: %d/%d seeds, %d violating\n", name, done, seeds, violating)
				}
			},
		})
		if errors.Is(err, context.Canceled) && s != nil {
			// Interrupted: report what ran.
			if s.Seeds > 0 {
				sweeps = append(sweeps, s)
			}
			interrupted = true
			break
		}
		if err != nil {
			return usageErr(err)
		}
		sweeps = append(sweeps, s)
	}
	elapsed := time.Since(start)
	if interrupted {
		ran := make([]string, len(sweeps))
		for i, s := range sweeps {
			ran[i] = fmt.Sprintf("%s %d", variant(s.Config), s.Seeds)
		}
		fmt.Fprintf(stderr, "rolefsm sim: interrupted; seeds that ran: %s\n", strings.Join(append(ran, "none else"), ", "))
		if len(sweeps) == 0 {
			return exitInterrupted
		}
		fmt.Fprintf(out, "INTERRUPTED: the table counts only the seeds that ran (%s)\n", strings.Join(ran, ", "))
	}

	c := sweeps[0].Config
	fmt.Fprintf(out, "sweep of %d seeds (%d to %d) · %d nodes · %d steps of %v · heartbeat %v, miss %d · faults %v until step %d · each seed run twice\n\n",
		seeds, c.Seed, c.Seed+uint64(seeds)-1, c.Nodes, c.Steps, c.Step, c.Heartbeat.Interval(), c.Heartbeat.MissThreshold(), c.Faults, c.FaultsUntil)
	row := func(label string, f func(s *sim.Sweep) string) {
		fmt.Fprintf(out, "%-28s", label)
		for _, s := range sweeps {
			fmt.Fprintf(out, " %12s", f(s))
		}
		fmt.Fprintln(out)
	}
	avg := func(get func(s *sim.Sweep) int) func(s *sim.Sweep) string {
		return func(s *sim.Sweep) string { return fmt.Sprintf("%.2f", float64(get(s))/float64(s.Seeds)) }
	}
	count := func(get func(s *sim.Sweep) int) func(s *sim.Sweep) string {
		return func(s *sim.Sweep) string { return fmt.Sprint(get(s)) }
	}
	row("policy", func(s *sim.Sweep) string { return variant(s.Config) })
	row("violating seeds", count(func(s *sim.Sweep) int { return len(s.Violating) }))
	row("elections per run", avg(func(s *sim.Sweep) int { return s.Elections }))
	row("leader changes per run", avg(func(s *sim.Sweep) int { return s.LeaderChanges }))
	row("thrash per run", avg(func(s *sim.Sweep) int { return s.Thrash }))
	row("cold starts per run", avg(func(s *sim.Sweep) int { return s.ColdStarts }))
	row("concessions per run", avg(func(s *sim.Sweep) int { return s.Concessions }))
	row("dual-leader steps per run", avg(func(s *sim.Sweep) int { return s.DualLeaderSteps }))
	row("runs with a dual leader", count(func(s *sim.Sweep) int { return s.DualLeaderRuns }))
	row("leaderless steps per run", avg(func(s *sim.Sweep) int { return s.LeaderlessSteps }))
	row("writes fenced per run", avg(func(s *sim.Sweep) int { return s.Fenced }))
	row("stale appends", count(func(s *sim.Sweep) int { return s.StaleAppends }))
	row("runs never converged", count(func(s *sim.Sweep) int { return s.NotConverged }))
	row("slowest convergence", func(s *sim.Sweep) string { return fmtDur(s.MaxConvergence) })

	code := exitOK
	for _, s := range sweeps {
		for _, r := range s.Violating {
			code = exitRejected
			fmt.Fprintf(out, "\nseed %d (policy %s): %s, first: %v\n  reproduce with: %s\n",
				r.Config.Seed, variant(r.Config), fmt.Sprintf("%d %s", r.ViolationCount, plural(r.ViolationCount, "violation", "violations")),
				r.Violations[0], reproduce(r.Config))
		}
	}
	if interrupted {
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "sweep: %d seeds × %d %s in %v\n", seeds, len(sweeps), plural(len(sweeps), "policy", "policies"), elapsed.Round(time.Millisecond))
	return code
}

// variant names a sweep's column: the policy, and the evidence rule
// when one was chosen (policy/evidence).
func variant(c sim.Config) string {
	if c.Evidence == replica.DefaultEvidence {
		return c.Policy.Name()
	}
	return c.Policy.Name() + "/" + c.Evidence.String()
}

// reproduce returns the command line that runs c again.
func reproduce(c sim.Config) string {
	s := fmt.Sprintf("rolefsm sim -seed %d -nodes %d -steps %d -faults %v -policy %s -heartbeat %v -miss %d",
		c.Seed, c.Nodes, c.Steps, c.Faults, c.Policy.Name(), c.Heartbeat.Interval(), c.Heartbeat.MissThreshold())
	if c.Evidence != replica.DefaultEvidence {
		s += " -evidence " + c.Evidence.String()
	}
	return s
}

// leaderStrip draws the most Leaders alive at once in each bucket of
// steps, one character a bucket: "." for none, a digit, "+" for ten or
// more.
func leaderStrip(leaders []uint8, bucket int) string {
	bucket = max(bucket, 1)
	var b strings.Builder
	for i := 0; i < len(leaders); i += bucket {
		most := uint8(0)
		for _, n := range leaders[i:min(i+bucket, len(leaders))] {
			most = max(most, n)
		}
		switch {
		case most == 0:
			b.WriteByte('.')
		case most > 9:
			b.WriteByte('+')
		default:
			b.WriteByte('0' + most)
		}
	}
	return b.String()
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// longRun is the size of a run, in node-steps, from which it prints
// its progress.
const longRun = 2_000_000

// maxStrip bounds the leaders strip of a run's summary, in characters.
const maxStrip = 100

// maxSteps bounds -steps: 10 million steps of 50 ms are 139 hours of
// virtual time.
const maxSteps = 10_000_000

// userError is err's message without the package prefixes that would
// stutter after the command's own ("rolefsm sim: sim: ...").
func userError(err error) string {
	parts := strings.Split(err.Error(), ": ")
	kept := parts[:0]
	for _, p := range parts {
		switch p {
		case "rolefsm", "sim", "policy", "replica", "udp":
		default:
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ": ")
}
