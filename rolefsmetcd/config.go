package rolefsmetcd

// The Elector's configuration, its defaults and checks, and the errors.

import (
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config configures an Elector.
type Config struct {
	// Client is the etcd client to campaign through. It stays the
	// caller's to close, after Run returns.
	Client *clientv3.Client
	// Prefix is the key prefix of the node's elections (default
	// /rolefsm/election): channel c is elected under Prefix/c/.
	Prefix string
	// TTL is the session's lease TTL, in whole seconds, at least 2 s
	// (default 10 s). A crashed leader holds office until it expires.
	TTL time.Duration
	// Margin is how long before the TTL, counted from the send of the
	// latest keep-alive that succeeded, a leader leaves office (default
	// TTL/5; above 0 and below TTL − RenewEvery). It covers how
	// much slower than the etcd server's the node's clock may run
	// (Margin/TTL: 20% by default; NTP keeps clocks within 0.05%) and
	// how late the step-down may run after its deadline (a scheduling
	// or GC pause).
	Margin time.Duration
	// RenewEvery is how often the session is kept alive, on one
	// keep-alive stream (default TTL/3 rounded up to a half second: the
	// cadence of etcd's own client, which renews TTL/3 after each
	// answer and looks every 500 ms; 1 s for a TTL of 2 s, 3.5 s for
	// 10 s). A failed keep-alive is retried every RenewEvery/4.
	RenewEvery time.Duration
	// RequestTimeout bounds each request to etcd (default 2 s, at most
	// RenewEvery).
	RequestTimeout time.Duration
	// Resync is how often the elector compares every channel's role
	// with etcd even when nothing has happened (default 10 s), a safety
	// net for a role changed behind the node's back. Events drive every
	// other pass, each over the channels it concerns: watch events, the
	// node's own changes (Close, disk pressure, Relinquish, Open: at
	// once), and the session's (every channel). A failed request is
	// retried after 100 ms.
	Resync time.Duration
	// OnError receives the errors of requests to etcd that the elector
	// retries. It may be called from several goroutines at once.
	OnError func(error)
	// Now is the clock the session's validity is measured on (default
	// time.Now; its monotonic reading counts): tests pass a fake one.
	// The timers that wake the elector are real.
	Now func() time.Time
}

const (
	// DefaultPrefix is the key prefix when Config.Prefix is empty.
	DefaultPrefix = "/rolefsm/election"
	// maxTxnOps is etcd's default --max-txn-ops.
	maxTxnOps = 128
)

var (
	// ErrBadConfig is returned by New for a configuration it cannot
	// run with.
	ErrBadConfig = errors.New("rolefsmetcd: bad configuration")
	// ErrUnreachable is returned by New when etcd does not answer: the
	// node holds no session and campaigns for nothing.
	ErrUnreachable = errors.New("rolefsmetcd: cannot reach etcd")
	// ErrRunning is returned by Run when the elector already runs or
	// has run.
	ErrRunning = errors.New("rolefsmetcd: elector already ran")
	// ErrNoSession is returned by Ready while the node holds no
	// session it may act on.
	ErrNoSession = errors.New("rolefsmetcd: no etcd session")
)

func (c *Config) fill() error {
	if c.Client == nil {
		return fmt.Errorf("%w: no etcd client", ErrBadConfig)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = 10 * time.Second
	}
	if c.TTL < 2*time.Second || c.TTL%time.Second != 0 {
		return fmt.Errorf("%w: TTL %v, want whole seconds, 2s or more", ErrBadConfig, c.TTL)
	}
	if c.RenewEvery == 0 {
		const step = 500 * time.Millisecond
		c.RenewEvery = (c.TTL/3 + step - 1) / step * step
	}
	if c.Margin == 0 {
		c.Margin = c.TTL / 5
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = min(2*time.Second, c.RenewEvery)
	}
	if c.Resync == 0 {
		c.Resync = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.RenewEvery <= 0 || c.RenewEvery >= c.TTL:
		return fmt.Errorf("%w: RenewEvery %v, want above 0 and below the TTL %v", ErrBadConfig, c.RenewEvery, c.TTL)
	case c.Margin <= 0 || c.Margin >= c.TTL-c.RenewEvery:
		return fmt.Errorf("%w: Margin %v, want above 0 and below TTL − RenewEvery (%v)", ErrBadConfig, c.Margin, c.TTL-c.RenewEvery)
	case c.RequestTimeout <= 0 || c.RequestTimeout > c.RenewEvery:
		return fmt.Errorf("%w: RequestTimeout %v, want above 0 and at most RenewEvery %v", ErrBadConfig, c.RequestTimeout, c.RenewEvery)
	case c.Resync <= 0:
		return fmt.Errorf("%w: Resync %v, want above 0", ErrBadConfig, c.Resync)
	}
	return nil
}
