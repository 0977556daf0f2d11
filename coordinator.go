package rolefsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/looplab/fsm"
)

// Coordinator holds one channel's role and moves it only along the
// transition matrix. It is safe for concurrent use.
//
// Every committed transition is validated against the role it commits
// from, under one lock, and committed through a looplab/fsm Event; the
// committed sequence is therefore always a valid chain. Role reads do
// not take the lock, and neither do rejections, unless an observer or
// a logger is set (their record is queued under it).
//
// Observers and the audit logger run after the commit, outside the
// lock, on a run-to-completion queue: records are delivered one at a
// time, committed ones in Generation order, each observer seeing every record
// exactly once. The goroutine whose Transition enqueued a record
// delivers it, together with any records enqueued meanwhile by others,
// unless another goroutine is already delivering; then that one does.
// So an observer may call Role, Stats, Lease and even Transition on
// the same coordinator: a transition made from inside an observer
// commits at once, and its record is delivered after the current
// observer call returns. A slow observer delays the Transition call
// that is delivering, never the commits of other goroutines. A panic in
// an observer or in the logger's handler is recovered and counted in
// Stats.ObserverPanics; delivery goes on with the next call.
type Coordinator struct {
	name string

	// state packs the generation and the role (generation<<8 | role)
	// so that both are read in one atomic load. Written only by
	// countCommit, with mu held.
	state atomic.Uint64

	mu      sync.Mutex
	machine *fsm.FSM
	pending Transition // the transition Event is committing
	// committed counts commits per counted triple (see Counted), under
	// mu; LeaderChanges and ElectionThrash are sums of them.
	committed [NumCounted]uint64
	// coldStarts counts the MissedHeartbeats commits marked ColdStart,
	// under mu.
	coldStarts uint64

	invalidPairs     atomic.Uint64
	signalMismatches atomic.Uint64

	// obs is the audit logger, observers and subscriptions and their
	// delivery queue; nil until there is one, which saves their room in
	// the many coordinators of a large node. Set once, under mu.
	obs atomic.Pointer[observers]
}

// now reads the clock that stamps records: WithClock's, kept with the
// observers (only records read it), or time.Now.
func (c *Coordinator) now() time.Time {
	if o := c.obs.Load(); o != nil && o.clock != nil {
		return o.clock()
	}
	return time.Now()
}

// observers is what a coordinator with an audit logger or observers
// keeps besides: the sinks, the commit time, and the delivery queue,
// all but panics guarded by the coordinator's mu.
type observers struct {
	logger *slog.Logger
	// sinks are the audit logger, if any, the observers, then the
	// subscriptions; replaced whole, under mu, when a subscription
	// comes or goes.
	sinks     atomic.Pointer[[]*sink]
	pendingAt time.Time        // the commit time of c.pending
	clock     func() time.Time // WithClock's, or nil for time.Now
	panics    atomic.Uint64

	// Records waiting while another call delivers, from queue[head] on.
	queue    []delivery
	head     int
	draining bool     // some call is delivering
	first    delivery // the deliverer's first record (see post)
}

// sink is one receiver of records: a pointer, so that a subscription
// can find its own to remove.
type sink struct{ fn Observer }

type delivery struct {
	ctx context.Context
	rec Record
}

func pack(gen uint64, r Role) uint64 { return gen<<8 | uint64(r) }

// NewCoordinator returns a coordinator in Idle, or in the role given by
// WithInitialRole, with generation 0.
func NewCoordinator(opts ...Option) (*Coordinator, error) {
	var cfg config
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("rolefsm: nil Option")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	c := &Coordinator{name: cfg.name}
	if cfg.logger != nil || len(cfg.observers) > 0 || cfg.clock != nil {
		o := &observers{logger: cfg.logger, clock: cfg.clock}
		var sinks []*sink
		if cfg.logger != nil {
			sinks = append(sinks, &sink{fn: c.audit})
		}
		for _, f := range cfg.observers {
			sinks = append(sinks, &sink{fn: f})
		}
		o.sinks.Store(&sinks)
		c.obs.Store(o)
	}
	c.machine = fsm.NewFSM(roleNames[cfg.initial], events, c.callbacks())
	c.state.Store(pack(0, cfg.initial))
	return c, nil
}

// Name returns the channel name given by WithName.
func (c *Coordinator) Name() string { return c.name }

// Role returns the current role. It takes no lock.
func (c *Coordinator) Role() Role { return Role(c.state.Load()) }

// Lease returns the current role and generation, read together in one
// atomic load. It takes no lock.
func (c *Coordinator) Lease() Lease {
	st := c.state.Load()
	return Lease{Role: Role(st), Generation: st >> 8}
}

// Holds reports whether l is a Leader term that is still current: l was
// taken while the coordinator was Leader, and no transition has
// committed since. It takes no lock and does not allocate, so it can
// guard every append:
//
//	lease := r.Lease() // in an observer, from the record that made it Leader
//	...
//	if !c.Holds(lease) {
//		return errNotLeader // deposed since: this write must not land
//	}
//
// Only a Leader term is held. A lease of any other role never holds,
// the zero Lease among them (a fresh coordinator's), so a lease that
// was never set cannot pass a fence. (To see whether a Replica is still
// in the term it was in, compare its Lease with the one kept.)
func (c *Coordinator) Holds(l Lease) bool {
	return l.Role == Leader && l.Generation <= maxGeneration && c.state.Load() == pack(l.Generation, Leader)
}

// maxGeneration is the largest generation the packed state can hold:
// 2^56-1 commits, more than a commit per nanosecond for two years.
const maxGeneration = 1<<56 - 1

// Fire moves the coordinator to the destination of sig, as
// Transition(ctx, to, sig) with to the one role sig drives to. A signal
// outside the defined set returns an error matching ErrUnknownSignal
// and changes nothing.
func (c *Coordinator) Fire(ctx context.Context, sig Signal) (Transition, error) {
	to, ok := Destination(sig)
	if !ok {
		return Transition{}, fmt.Errorf("%w: %v", ErrUnknownSignal, sig)
	}
	return c.Transition(ctx, to, sig)
}

// Transition moves the coordinator from its current role to `to` under
// sig, if Apply permits that triple, and returns the transition.
//
// A rejected attempt returns an *InvalidPairError or
// *SignalMismatchError and changes nothing but the rejection counters.
// Idle → Idle under ChannelClose succeeds and changes nothing at all: no
// generation, no counter, no record. A context that is already done
// returns its error and changes nothing; so does one that is done by
// the time the lock is acquired. Once the commit has begun it is not
// abandoned.
func (c *Coordinator) Transition(ctx context.Context, to Role, sig Signal) (Transition, error) {
	if ctx == nil {
		return Transition{}, ErrNilContext
	}
	if err := ctx.Err(); err != nil {
		return Transition{}, err
	}
	st := c.state.Load()
	t, err := Apply(Role(st), to, sig)
	if err != nil {
		// Rejected against the role just read: no lock needed.
		c.countReject(Role(st), to)
		if c.obs.Load() != nil {
			c.mu.Lock()
			deliver := c.post(delivery{ctx: ctx, rec: c.rejection(st, to, sig, err)})
			c.mu.Unlock()
			if deliver {
				c.drain()
			}
		}
		return Transition{}, err
	}
	if t.From == Idle && t.To == Idle {
		return t, nil // idempotent close
	}
	t, deliver, err := c.commit(ctx, to, sig)
	if deliver {
		c.drain()
	}
	return t, err
}

// commit validates (current, to, sig) again under the lock, against the
// role it will commit from, and commits it through looplab. When this
// call is to deliver records (see post), it returns deliver true.
func (c *Coordinator) commit(ctx context.Context, to Role, sig Signal) (t Transition, deliver bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Transition{}, false, err
	}
	st := c.state.Load()
	t, err = Apply(Role(st), to, sig)
	if err != nil {
		c.countReject(Role(st), to)
		if c.obs.Load() != nil {
			deliver = c.post(delivery{ctx: ctx, rec: c.rejection(st, to, sig, err)})
		}
		return Transition{}, deliver, err
	}
	if t.From == Idle && t.To == Idle {
		return t, false, nil
	}
	c.pending = t
	// looplab freezes for good if it ever sees a cancelled context
	// (a looplab v1.0.3 defect), so it never gets one that can be cancelled.
	lctx := ctx
	if ctx.Done() != nil {
		lctx = context.WithoutCancel(ctx)
	}
	if lerr := c.machine.Event(lctx, signalNames[sig]); lerr != nil {
		return Transition{}, false, fromLooplab(t, lerr)
	}
	cold := sig == MissedHeartbeats && isColdStart(ctx)
	if cold {
		c.coldStarts++
	}
	if o := c.obs.Load(); o != nil {
		deliver = c.post(delivery{ctx: ctx, rec: Record{Name: c.name, Transition: t, Generation: c.state.Load() >> 8, At: o.pendingAt,
			ColdStart: cold}})
	}
	return t, deliver, nil
}

// countReject counts a rejected attempt by its kind, which the (from,
// to) pair decides alone (Apply's rule 3).
func (c *Coordinator) countReject(from, to Role) {
	if from < numRoles && to < numRoles && matrix.pair[from][to] {
		c.signalMismatches.Add(1)
	} else {
		c.invalidPairs.Add(1)
	}
}

// rejection is the record of a rejected attempt; st is the packed state
// it was validated against.
func (c *Coordinator) rejection(st uint64, to Role, sig Signal, err error) Record {
	return Record{
		Name:       c.name,
		Transition: Transition{From: Role(st), To: to, Signal: sig},
		Generation: st >> 8,
		At:         c.now(),
		Err:        err,
	}
}

// fromLooplab maps what looplab's Event returned for transition t onto
// this package's errors; it is the wrapper's whole error rule.
//
// looplab reports the idempotent close (Idle → Idle under ChannelClose)
// as NoTransitionError: that is success. NoTransitionError for any
// other t, InvalidEventError and UnknownEventError are refusals and
// become the error Apply gives for t; were Apply to permit t, the table
// and the looplab registration disagree, which is reported as an
// internal error rather than passed off as success. Anything else
// (looplab in a transition it cannot finish) is wrapped.
func fromLooplab(t Transition, err error) error {
	if err == nil {
		return nil
	}
	var noTransition fsm.NoTransitionError
	var invalid fsm.InvalidEventError
	var unknown fsm.UnknownEventError
	switch {
	case errors.As(err, &noTransition) && noTransition.Err == nil:
		if t.From == t.To {
			return nil
		}
	case errors.As(err, &invalid), errors.As(err, &unknown):
	default:
		return fmt.Errorf("rolefsm: internal error: looplab failed %v: %w", t, err)
	}
	if _, aerr := Apply(t.From, t.To, t.Signal); aerr != nil {
		return aerr
	}
	return fmt.Errorf("rolefsm: internal error: looplab refused %v, which the matrix permits: %w", t, err)
}

// post hands d to the delivery queue; c.mu must be held. If a call is
// delivering, d joins the queue behind the records already waiting and
// post returns false. Otherwise the caller becomes the deliverer: post
// puts the record to deliver first in c.obs's first (d itself, unless records
// were left queued by an observer that ended its goroutine) and returns
// true, and the caller must call drain once c.mu is released. Because
// post runs under c.mu, the queue is in commit order.
func (c *Coordinator) post(d delivery) bool {
	o := c.obs.Load()
	if o.draining {
		o.queue = append(o.queue, d)
		return false
	}
	o.draining = true
	if o.head < len(o.queue) {
		o.queue = append(o.queue, d)
		d = c.pop()
	}
	o.first = d
	return true
}

// pop removes the record at the head of the queue; c.mu must be held.
func (c *Coordinator) pop() delivery {
	o := c.obs.Load()
	d := o.queue[o.head]
	o.queue[o.head] = delivery{} // drop the context reference
	o.head++
	if o.head == len(o.queue) {
		o.queue, o.head = o.queue[:0], 0
	}
	return d
}

// drain delivers c.first, then every record queued meanwhile, until the
// queue is empty. Only the one call that post chose runs it at a time
// (an observer that calls back into the coordinator only queues), so
// records are delivered one at a time, in order; the first record is that call's
// alone until it resets draining.
func (c *Coordinator) drain() {
	o := c.obs.Load()
	locked := false
	defer func() {
		// Normally reached with c.mu held and the queue empty. An
		// observer that calls runtime.Goexit (t.FailNow in a test)
		// gets here without it: take it, and leave what is queued to
		// the next deliverer.
		if !locked {
			c.mu.Lock()
		}
		o.draining = false
		c.mu.Unlock()
	}()
	d := o.first
	o.first = delivery{}
	for {
		for _, k := range *o.sinks.Load() {
			c.call(k.fn, &d)
		}
		c.mu.Lock()
		locked = true
		if o.head == len(o.queue) {
			return
		}
		d = c.pop()
		c.mu.Unlock()
		locked = false
	}
}

// call hands d to one sink, recovering a panic so that it can neither
// leave the queue stuck nor reach the caller of Transition.
func (c *Coordinator) call(s Observer, d *delivery) {
	defer func() {
		if recover() != nil {
			c.obs.Load().panics.Add(1)
		}
	}()
	s(d.ctx, d.rec)
}
