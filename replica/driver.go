package replica

import (
	"context"
	"sync"
	"time"

	"github.com/rolefsm/rolefsm/policy"
)

// DriverOptions configure a Driver.
type DriverOptions struct {
	// TickInterval, when positive, also ticks the node at least this
	// often. By default the driver ticks only when the node is due
	// (Node.Due: its next heartbeat, a deadline, an election) and at
	// no other time, so an idle node wakes once an interval (under
	// Config.External, once every ExternalRefresh intervals).
	TickInterval time.Duration
	// OnError receives what the node refused of the transport's
	// batches (a *StepError or a batch from an unknown node) and the
	// transport's send errors. It runs on the driver's goroutine, with
	// the node locked: it must not call Do.
	OnError func(error)
}

// Driver runs a Node on a Transport with the real clock: it calls Tick
// when the node is due (Node.Due) and sends what comes out, and calls
// Step on every batch received. It is the only part of the runtime
// with goroutines and a clock, and it owns no goroutine of its own: Run
// blocks in the caller's. Observers of the node's coordinators run on
// that goroutine too, with the node locked: an observer must not call
// Do.
//
// It sleeps on one timer, set after every Tick, Step and Do to the
// node's next due time (a deadline DeadlineGrace late), and no sooner
// than MinTickGap after the last Tick: a heartbeat goes out when it is due, late only by the runtime's
// timer and scheduling latency, and a node with nothing due does not
// wake.
type Driver struct {
	mu      sync.Mutex
	node    *Node
	tr      Transport
	every   time.Duration // TickInterval, or 0
	onError func(error)
	running bool
	kick    chan struct{} // Do or Leave may have brought the node's due time nearer
	ticks   uint64        // Ticks run, for the tests
	last    time.Time     // the latest Tick's
	gap     time.Duration // MinTickGap
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// NewDriver returns a driver for n on t, and gives n a DeadlineGrace.
// The node must not be used other than through Do from then on.
func NewDriver(n *Node, t Transport, opt DriverOptions) *Driver {
	n.grace = int64(DeadlineGrace(n.Heartbeat()))
	return &Driver{
		node: n, tr: t, every: max(opt.TickInterval, 0), onError: opt.OnError, kick: make(chan struct{}, 1),
		gap: MinTickGap(n.Heartbeat()),
	}
}

// DeadlineGrace is how late a node run by a Driver acts on a deadline
// on purpose (NewDriver gives it to the node): a tenth of the heartbeat
// interval. The heartbeat that makes a timeout is due at the very
// instant the timeout runs out (a Replica's third missed claim under
// MissThreshold 3 is sent 3 intervals after the last one heard), so
// acting at that instant would count it missed whenever it is a moment
// late, and a timeout of 3 would mean 2 and a coin toss. The node
// itself waits out the grace, whatever else ticks it meanwhile (an
// input, its own heartbeat). The driver's old tick, every tenth of an
// interval, gave up to the same allowance by chance.
func DeadlineGrace(h policy.Heartbeat) time.Duration { return h.Interval() / 10 }

// MinTickGap is the least time a Driver lets pass between two Ticks:
// a hundredth of the heartbeat interval, and at least a millisecond.
// Inputs that bring a deadline to now (a goodbye, a stand, a peer's
// restart) then cost one Tick, a scan of the node's channels, per gap
// at most, whatever the rate at which they arrive; an election is late
// by a gap at most, and a heartbeat only when a Tick came just before.
func MinTickGap(h policy.Heartbeat) time.Duration {
	return max(h.Interval()/100, time.Millisecond)
}

// Run drives the node until ctx ends, then returns nil; it returns
// ErrTransportClosed if the transport's inbox closes first. It ticks
// once at the start. The transport is the caller's to close.
func (d *Driver) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return ErrRunning
	}
	d.running = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.mu.Unlock()
	}()

	inbox := d.tr.Inbox()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var armed time.Time // when timer fires; zero once it has
	d.onTick(ctx)
	for {
		// Arm the timer for the node's next due time (or TickInterval
		// after the last Tick, if sooner), but no sooner than the gap
		// after the last Tick; a time already past fires at once.
		d.mu.Lock()
		due := d.node.Due()
		if d.every > 0 {
			due = minTime(due, d.last.Add(d.every))
		}
		if floor := d.last.Add(d.gap); due.Before(floor) {
			due = floor
		}
		d.mu.Unlock()
		if !due.Equal(armed) {
			timer.Reset(time.Until(due))
			armed = due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			armed = time.Time{}
			d.onTick(ctx)
		case <-d.kick:
		case in, ok := <-inbox:
			if !ok {
				return ErrTransportClosed
			}
			d.onBatch(ctx, in)
		}
	}
}

func (d *Driver) onTick(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ticks++
	d.last = time.Now()
	for _, m := range d.node.Tick(ctx, d.last) {
		if err := d.tr.Send(ctx, m.To, m.Batch); err != nil {
			d.report(err)
		}
	}
}

func (d *Driver) onBatch(ctx context.Context, in Inbound) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if in.HasRTT {
		if err := d.node.ObserveRTT(in.Batch.From, in.RTT); err != nil {
			d.report(err)
		}
	}
	if err := d.node.Step(ctx, time.Now(), in.Batch); err != nil {
		d.report(err)
	}
}

func (d *Driver) report(err error) {
	if d.onError != nil {
		d.onError(err)
	}
}

// Do runs fn on the node, serialised with the driver's ticks and
// steps, with the current time: the way to open and close channels,
// report tails, disk pressure and relinquish, and read status, while
// the driver runs (or before). Observers of the node's coordinators
// run inside fn's transitions, on the calling goroutine.
func (d *Driver) Do(fn func(n *Node, now time.Time) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.wakeRun()
	return fn(d.node, time.Now())
}

// wakeRun makes Run look at the node's due time again.
func (d *Driver) wakeRun() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Leave makes the node leave every channel (Node.Leave) and sends the
// goodbyes at once, for a graceful shutdown: peers fail over on their
// next tick instead of after the heartbeat timeout. Call it before
// ending Run's context.
func (d *Driver) Leave(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.wakeRun()
	var first error
	for _, m := range d.node.Leave(ctx, time.Now()) {
		if err := d.tr.Send(ctx, m.To, m.Batch); err != nil && first == nil {
			first = err
		}
	}
	return first
}
