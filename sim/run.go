package sim

// The entry points: Run one configuration, or Check it (run twice, and
// compare).

import (
	"fmt"
	"io"
	"strconv"
)

// Run simulates cfg and returns what happened. When trace is not nil
// it receives the timeline: one line per fault and per committed
// transition. Run returns an error only for a bad Config (matching
// ErrBadConfig) or a failed trace write; broken invariants are in the
// Result.
func Run(cfg Config, trace io.Writer) (*Result, error) { return simulate(cfg, trace, hooks{}, nil) }

// simulate is Run with the tests' hooks, calling progress(step), when
// given, every hundredth of the run (and at its end).
func simulate(cfg Config, trace io.Writer, h hooks, progress func(step int)) (*Result, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	r := newRun(cfg, trace, h)
	if err := r.start(); err != nil {
		return nil, err
	}
	every := max(cfg.Steps/100, 1)
	for r.step = 0; r.step < cfg.Steps; r.step++ {
		r.tick()
		if progress != nil && (r.step+1)%every == 0 {
			progress(r.step + 1)
		}
	}
	r.finish()
	if r.twErr != nil {
		return nil, fmt.Errorf("sim: writing the trace: %w", r.twErr)
	}
	return &r.res, nil
}

// Check runs cfg twice, the second time without a trace, and adds an
// InvReproducible violation if the two runs differ.
func Check(cfg Config, trace io.Writer) (*Result, error) { return checkTwice(cfg, trace, hooks{}, nil) }

// CheckProgress is Check that reports its progress: progress(done,
// total) is called every hundredth of each run, total being both runs'
// steps. A long run (many nodes, many steps) can say it is alive.
func CheckProgress(cfg Config, trace io.Writer, progress func(done, total int)) (*Result, error) {
	return checkTwice(cfg, trace, hooks{}, progress)
}

// checkTwice is Check with the tests' hooks and an optional progress.
func checkTwice(cfg Config, trace io.Writer, h hooks, progress func(done, total int)) (*Result, error) {
	var onFirst, onSecond func(int)
	if progress != nil {
		n, err := cfg.normalized()
		if err != nil {
			return nil, err
		}
		onFirst = func(step int) { progress(step, 2*n.Steps) }
		onSecond = func(step int) { progress(n.Steps+step, 2*n.Steps) }
	}
	first, err := simulate(cfg, trace, h, onFirst)
	if err != nil {
		return nil, err
	}
	second, err := simulate(cfg, nil, h, onSecond)
	if err != nil {
		return nil, err
	}
	if d := differs(first, second); d != "" {
		first.add(Violation{Invariant: InvReproducible, Step: cfg.Steps, At: first.TimeOf(first.Config.Steps),
			Detail: "a second run of seed " + strconv.FormatUint(cfg.Seed, 10) + " differs: " + d})
	}
	return first, nil
}
