package rolefsm

import (
	"context"
	"log/slog"

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
			if o := c.obs.Load(); o != nil {
				o.pendingAt = c.now()
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
	if i := matrix.slot[t.From][t.Signal]; i >= 0 {
		c.committed[i]++
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
// so a slow or failing handler cannot stall commits. The log record
// carries r.At as its time, so the audit line and the observers agree on
// when the transition happened, and the clock is read once, not twice.
func (c *Coordinator) audit(ctx context.Context, r Record) {
	level, msg := slog.LevelInfo, msgCommitted
	if r.Err != nil {
		level, msg = slog.LevelWarn, msgRejected
	}
	h := c.obs.Load().logger.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	rec := slog.NewRecord(r.At, level, msg, 0)
	rec.AddAttrs(
		slog.String("name", c.name),
		slog.String("from", r.From.String()),
		slog.String("to", r.To.String()),
		slog.String("signal", r.Signal.String()),
		slog.Uint64("generation", r.Generation),
	)
	if r.ColdStart {
		rec.AddAttrs(slog.Bool("cold_start", true))
	}
	if r.Err != nil {
		rec.AddAttrs(slog.String("error", r.Err.Error()))
	}
	_ = h.Handle(ctx, rec) // as slog.Logger does, a handler's error is dropped
}
