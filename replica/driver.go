package replica

import (
	"context"
	"sync"
	"time"
)

// DriverOptions configure a Driver.
type DriverOptions struct {
	// TickInterval is how often the Node is ticked (default a tenth of
	// its heartbeat interval). It bounds how late a heartbeat, a
	// timeout or an election can be.
	TickInterval time.Duration
	// OnError receives what the node refused of the transport's
	// batches (a *StepError or a batch from an unknown node) and the
	// transport's send errors. It runs on the driver's goroutine, with
	// the node locked: it must not call Do.
	OnError func(error)
}

// Driver runs a Node on a Transport with the real clock: on every
// tick it calls Tick and sends what comes out; on every batch received
// it calls Step. It is the only part of the runtime with goroutines and
// a clock, and it owns no goroutine of its own: Run blocks in the
// caller's. Observers of the node's coordinators run on that goroutine
// too, with the node locked: an observer must not call Do.
type Driver struct {
	mu      sync.Mutex
	node    *Node
	tr      Transport
	tick    time.Duration
	onError func(error)
	running bool
}

// NewDriver returns a driver for n on t. The node must not be used
// other than through Do from then on.
func NewDriver(n *Node, t Transport, opt DriverOptions) *Driver {
	if opt.TickInterval <= 0 {
		opt.TickInterval = max(n.Heartbeat().Interval()/10, time.Millisecond)
	}
	return &Driver{node: n, tr: t, tick: opt.TickInterval, onError: opt.OnError}
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

	ticker := time.NewTicker(d.tick)
	defer ticker.Stop()
	inbox := d.tr.Inbox()
	d.onTick(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			d.onTick(ctx)
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
	for _, m := range d.node.Tick(ctx, time.Now()) {
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
	return fn(d.node, time.Now())
}

// Leave makes the node leave every channel (Node.Leave) and sends the
// goodbyes at once, for a graceful shutdown: peers fail over on their
// next tick instead of after the heartbeat timeout. Call it before
// ending Run's context.
func (d *Driver) Leave(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var first error
	for _, m := range d.node.Leave(ctx, time.Now()) {
		if err := d.tr.Send(ctx, m.To, m.Batch); err != nil && first == nil {
			first = err
		}
	}
	return first
}
