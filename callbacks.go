package rolefsm

import (
	"context"
	"log/slog"
	"time"

	"github.com/looplab/fsm"
)

// callbacks returns the looplab callbacks of c's machine. looplab runs
// them inside Event, which the Coordinator only calls with c.mu held,
// so they may touch the fields that c.mu guards. They read the
// transition from c.pending, set just before Event, rather than
// parsing looplab's strings back into roles.
func (c *Coordinator) callbacks() fsm.Callbacks {
	return fsm.Callbacks{
		// before_event stamps the commit time, which only records need.
		"before_event": func(context.Context, *fsm.Event) {
			if c.notify {
				c.pendingAt = time.Now()
			}
		},
		// after_event runs once looplab has entered the new state: it
		// counts the transition and publishes the new role and
		// generation in one atomic store.
		"after_event": func(context.Context, *fsm.Event) {
			c.countCommit(c.pending)
		},
	}
}

// countCommit updates the commit counters for t and publishes its
// destination. c.mu must be held.
func (c *Coordinator) countCommit(t Transition) {
	c.committed[t.From][t.To][t.Signal]++
	if t.To == Leader {
		c.leaderChanges++
	}
	if t.Signal == MissedHeartbeats {
		c.electionThrash++
	}
	gen := c.state.Load()>>8 + 1
	c.state.Store(pack(gen, t.To))
}

// Audit log messages, one per committed and one per rejected transition.
const (
	msgCommitted = "role transition"
	msgRejected  = "role transition rejected"
)

// audit writes r to c's logger: Info for a committed transition, Warn
// for a rejected one. It runs on the delivery path, never under c.mu,
// so a slow or failing handler cannot stall commits.
func (c *Coordinator) audit(ctx context.Context, r Record) {
	if r.Err == nil {
		c.logger.LogAttrs(ctx, slog.LevelInfo, msgCommitted,
			slog.String("name", c.name),
			slog.String("from", r.From.String()),
			slog.String("to", r.To.String()),
			slog.String("signal", r.Signal.String()),
			slog.Uint64("seq", r.Seq),
		)
		return
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, msgRejected,
		slog.String("name", c.name),
		slog.String("from", r.From.String()),
		slog.String("to", r.To.String()),
		slog.String("signal", r.Signal.String()),
		slog.Uint64("seq", r.Seq),
		slog.String("error", r.Err.Error()),
	)
}
