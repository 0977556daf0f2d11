package rolefsm

import (
	"context"
	"errors"
	"testing"

	"pgregory.net/rapid"
)

// rapidChecks counts the runs rapid made of TestModel, for the log.
var rapidChecks int

// TestModel is a stateful property test: rapid interleaves
// Transition, Fire, Lease/Holds, Role, Stats, cancelled contexts and
// observer faults (a panicking observer, one that drives the
// coordinator from inside its callback) against the model, and shrinks
// any failure to a minimal sequence of actions.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		rapidChecks++
		start := rapid.SampledFrom(Roles()).Draw(rt, "initial")
		m := newModel(start)
		var (
			panicking, reentrant bool
			panics               uint64
			commits              []Record
			c                    *Coordinator
		)
		faulty := func(ctx context.Context, r Record) {
			if reentrant && r.Err == nil && r.To != Idle {
				// Close the channel from inside the callback: it
				// commits at once; its record follows this one.
				if _, err := c.Fire(ctx, ChannelClose); err != nil {
					rt.Fatalf("re-entrant Fire: %v", err)
				}
				_ = c.Role()
				_ = c.Stats()
				_ = c.Holds(c.Lease())
			}
			if panicking {
				panics++
				panic("observer fault")
			}
		}
		var err error
		c, err = NewCoordinator(WithInitialRole(start), WithName("model"),
			WithObserver(faulty),
			WithObserver(func(_ context.Context, r Record) {
				if r.Err == nil {
					commits = append(commits, r)
				}
			}))
		if err != nil {
			rt.Fatal(err)
		}
		// afterCommit models the re-entrant observer's close.
		afterCommit := func(code byte, genBefore uint64) {
			if reentrant && code == '.' && m.gen > genBefore && m.role != Idle {
				m.apply(Idle, ChannelClose)
			}
		}
		var leases []Lease
		ctx := context.Background()
		roleGen := rapid.Custom(func(t *rapid.T) Role { return Role(rapid.IntRange(0, 5).Draw(t, "to")) })
		sigGen := rapid.Custom(func(t *rapid.T) Signal { return Signal(rapid.IntRange(0, 11).Draw(t, "signal")) })

		rt.Repeat(map[string]func(*rapid.T){
			"Transition": func(t *rapid.T) {
				to, sig := roleGen.Draw(t, "to"), sigGen.Draw(t, "sig")
				before := m.gen
				code := m.apply(to, sig)
				_, err := c.Transition(ctx, to, sig)
				checkOutcome(t, code, err)
				afterCommit(code, before)
			},
			"Fire": func(t *rapid.T) {
				sig := sigGen.Draw(t, "sig")
				_, err := c.Fire(ctx, sig)
				to, ok := fireTarget(sig)
				if !ok {
					if !errors.Is(err, ErrUnknownSignal) {
						t.Fatalf("Fire(%v) = %v", sig, err)
					}
					return
				}
				before := m.gen
				code := m.apply(to, sig)
				checkOutcome(t, code, err)
				afterCommit(code, before)
			},
			"Cancelled": func(t *rapid.T) {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				if _, err := c.Transition(cctx, roleGen.Draw(t, "to"), sigGen.Draw(t, "sig")); !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled context: %v", err)
				}
			},
			"Lease": func(t *rapid.T) {
				l := c.Lease()
				if l != (Lease{Role: m.role, Generation: m.gen}) {
					t.Fatalf("Lease() = %+v, model %v/%d", l, m.role, m.gen)
				}
				leases = append(leases, l)
			},
			"Holds": func(t *rapid.T) {
				for _, l := range leases {
					if c.Holds(l) != (l.Generation == m.gen && l.Role == Leader) {
						t.Fatalf("Holds(%+v) = %v at generation %d", l, c.Holds(l), m.gen)
					}
				}
			},
			"Stats": func(t *rapid.T) {
				want := m.stats("model")
				want.ObserverPanics = panics
				if got := c.Stats(); !statsEqual(got, want) {
					t.Fatalf("Stats() = %+v, model %+v", got, want)
				}
			},
			"TogglePanic":     func(*rapid.T) { panicking = !panicking },
			"ToggleReentrant": func(*rapid.T) { reentrant = !reentrant },
			"": func(t *rapid.T) {
				if c.Role() != m.role {
					t.Fatalf("Role() = %v, model %v", c.Role(), m.role)
				}
				if uint64(len(commits)) != m.gen {
					t.Fatalf("%d commits observed, model generation %d", len(commits), m.gen)
				}
				for i, r := range commits {
					if r.Generation != uint64(i+1) {
						t.Fatalf("commit %d delivered with Seq %d", i, r.Generation)
					}
				}
			},
		})
	})
	t.Logf("rapid ran %d checks", rapidChecks)
}
