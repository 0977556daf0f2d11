package sim

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Sweep is what a run of many seeds did, summed.
type Sweep struct {
	Config Config // the normalised configuration; Seed is the first seed
	Seeds  int    // seeds run: Config.Seed to Config.Seed+Seeds-1

	// Violating holds the result of every seed that broke an invariant
	// (reproducibility included), in seed order, without Leaders and
	// Final, so that memory stays small: Run the seed for those.
	Violating []*Result

	// Totals over all seeds.
	Transitions, Elections, LeaderChanges, Thrash, ColdStarts, Concessions int
	DualLeaderSteps, LeaderlessSteps                                       int
	Appends, Fenced, StaleAppends                                          int
	// DualLeaderRuns counts the seeds with at least one dual-leader step.
	DualLeaderRuns int
	// NotConverged counts the seeds that never reached a single leader
	// per component after faults stopped; MaxConvergence is the longest
	// time from Calm to Converged among the others.
	NotConverged   int
	MaxConvergence time.Duration
}

// SweepOptions tune RunSweep.
type SweepOptions struct {
	// Workers run seeds in parallel (default GOMAXPROCS).
	Workers int
	// Progress, if not nil, is called after each completed seed with
	// the number done and the number violating so far. Calls are
	// serialised, on the workers' goroutines.
	Progress func(done, violating int)
}

// RunSweep runs seeds seeds, from cfg.Seed on, each through Check (so
// twice, to prove it reproducible). If ctx ends first it stops early and
// returns ctx's error with the sweep of the seeds that completed (Seeds
// counts them; they need not be the first ones). Every goroutine it
// starts has returned when it returns.
func RunSweep(ctx context.Context, cfg Config, seeds int, opt SweepOptions) (*Sweep, error) {
	return sweepWith(ctx, cfg, seeds, opt, hooks{})
}

func sweepWith(ctx context.Context, cfg Config, seeds int, opt SweepOptions, h hooks) (*Sweep, error) {
	norm, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	if seeds < 1 {
		return nil, fmt.Errorf("%w: %d seeds, want at least 1", ErrBadConfig, seeds)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, seeds)

	s := &Sweep{Config: norm, Seeds: seeds}
	var (
		mu       sync.Mutex
		next     int
		done     int
		firstErr error
		wg       sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= seeds || firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				if ctx.Err() != nil {
					return
				}
				c := cfg
				c.Seed = cfg.Seed + uint64(i)
				res, err := checkTwice(c, nil, h, nil)
				mu.Lock()
				if err != nil {
					firstErr = errors.Join(firstErr, err)
				} else {
					s.add(res)
				}
				done++
				if opt.Progress != nil {
					opt.Progress(done, len(s.Violating))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	// Workers finish seeds in any order; the report does not.
	sort.Slice(s.Violating, func(i, j int) bool { return s.Violating[i].Config.Seed < s.Violating[j].Config.Seed })
	if done < seeds {
		s.Seeds = done
		return s, ctx.Err()
	}
	return s, nil
}

// add counts one seed's result in, keeping it only if it violated an
// invariant: memory stays flat however many seeds run.
func (s *Sweep) add(r *Result) {
	s.Transitions += r.Transitions
	s.Elections += r.Elections
	s.LeaderChanges += r.LeaderChanges
	s.Thrash += r.Thrash
	s.ColdStarts += r.ColdStarts
	s.Concessions += r.Concessions
	s.DualLeaderSteps += r.DualLeaderSteps
	s.LeaderlessSteps += r.LeaderlessSteps
	s.Appends += r.Appends
	s.Fenced += r.Fenced
	s.StaleAppends += r.StaleAppends
	if r.DualLeaderSteps > 0 {
		s.DualLeaderRuns++
	}
	if r.Converged < 0 {
		s.NotConverged++
	} else if d := r.TimeOf(r.Converged - r.Calm); d > s.MaxConvergence {
		s.MaxConvergence = d
	}
	if !r.OK() {
		r.Leaders, r.Final = nil, nil // Run the seed again for those
		s.Violating = append(s.Violating, r)
	}
}
