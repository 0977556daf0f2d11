package rolefsmetcd

// The session's life: granted, kept alive, revoked; and the watchdog
// that takes the node out of office before the session can have
// expired at the server.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// validity is what a node knows of its lease's life at the server: the
// lease cannot expire there before TTL after the latest keep-alive
// that succeeded was sent. It keeps the send times on the node's
// monotonic clock (time.Now's reading) and says until when the node may
// act on the lease: TTL − margin after that send.
type validity struct {
	mu     sync.Mutex
	ttl    time.Duration
	margin time.Duration
	sent   time.Time // the latest send of a keep-alive (or grant) that succeeded
	ok     bool      // sent is set: the lease has been granted
}

// renewed records a keep-alive or grant sent at sent that succeeded,
// with the TTL the server gave. A reply older than the one recorded, or
// with a shorter TTL than configured, moves nothing later than it must.
func (v *validity) renewed(sent time.Time, ttl time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ttl < v.ttl {
		// The server granted less than asked for (it rounds up
		// below its minimum, never down, but trust it): act on
		// what it said.
		sent = sent.Add(ttl - v.ttl)
	}
	if !v.ok || sent.After(v.sent) {
		v.sent, v.ok = sent, true
	}
}

// lost forgets the lease: it expired at the server, or was revoked.
func (v *validity) lost() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ok = false
}

// until returns the instant up to which the node may act on the lease,
// and false if it holds none.
func (v *validity) until() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ok {
		return time.Time{}, false
	}
	return v.sent.Add(v.ttl - v.margin), true
}

// valid reports whether the node may act on the lease at now.
func (v *validity) valid(now time.Time) bool {
	u, ok := v.until()
	return ok && now.Before(u)
}

func (e *Elector) signal() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// grant opens a new session: a lease of the TTL.
func (e *Elector) grant(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	sent := e.now()
	e.stats.grants.Add(1)
	resp, err := e.cli.Grant(ctx, int64(e.cfg.TTL/time.Second))
	if err != nil {
		e.stats.failed.Add(1)
		return err
	}
	e.valid.renewed(sent, time.Duration(resp.TTL)*time.Second)
	e.lease.Store(int64(resp.ID))
	return nil
}

// revoke ends the session, deleting every key of it, if there is one.
func (e *Elector) revoke(ctx context.Context) {
	lease := e.lease.Swap(0)
	e.valid.lost()
	if lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.RequestTimeout)
	defer cancel()
	e.stats.revokes.Add(1)
	if _, err := e.cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
		e.report(fmt.Errorf("rolefsmetcd: revoke: %w", err))
	}
}

// keepAlive renews the session every RenewEvery, measuring each
// keep-alive from its send; a session expired at the server is
// replaced by a new one.
func (e *Elector) keepAlive(ctx context.Context) {
	t := time.NewTimer(e.cfg.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := e.cfg.RenewEvery
		lease := e.lease.Load()
		switch {
		case e.left.Load():
			return
		case lease == 0:
			if err := e.grant(ctx); err != nil {
				e.report(fmt.Errorf("rolefsmetcd: grant: %w", err))
				next = e.cfg.RenewEvery / 4
			}
			e.poke()
		default:
			rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
			sent := e.now()
			e.stats.keepAlives.Add(1)
			resp, err := e.cli.KeepAliveOnce(rctx, clientv3.LeaseID(lease))
			cancel()
			switch {
			case err == nil && resp.TTL > 0:
				e.valid.renewed(sent, time.Duration(resp.TTL)*time.Second)
				e.signal()
			case err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound):
				// Expired at the server: its keys are gone. A new
				// session at once.
				e.lease.CompareAndSwap(lease, 0)
				e.valid.lost()
				e.signal()
				e.report(fmt.Errorf("rolefsmetcd: session %x expired", lease))
				next = 0
			default:
				e.report(fmt.Errorf("rolefsmetcd: keep-alive: %w", err))
				next = e.cfg.RenewEvery / 4
			}
		}
		t.Reset(next)
	}
}

// watchdog takes the node out of office on every channel once the
// session can no longer be trusted: at TTL − Margin after the latest
// successful keep-alive's send, or at once when the session is found
// expired. It runs on its own goroutine, so that a request to etcd
// hanging in the loop cannot delay it. While the session stays stale it
// looks again every Resync (a cheap scan: no campaign can win then).
func (e *Elector) watchdog(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := e.now()
		if !e.valid.valid(now) {
			e.stepDownAll(ctx, true)
		}
		wait := e.cfg.Resync
		if u, ok := e.valid.until(); ok && u.After(now) {
			wait = u.Sub(now)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.changed:
		case <-t.C:
		}
	}
}

// stepDownAll takes every channel the node leads out of office
// (PeerLeaderObserved), or with stale only if the session cannot be
// trusted at this instant.
func (e *Elector) stepDownAll(ctx context.Context, stale bool) {
	down := 0
	_ = e.d.Do(func(n *replica.Node, now time.Time) error {
		if stale && e.valid.valid(e.now()) {
			return nil
		}
		for _, name := range n.Channels() {
			if n.Coordinator(name).Role() != rolefsm.Leader {
				continue
			}
			e.dropToken(name)
			if n.StepDown(ctx, now, name, 0) == nil {
				down++
			}
		}
		return nil
	})
	if stale {
		e.stats.stepDowns.Add(uint64(down))
	}
	if down > 0 {
		e.poke()
	}
}
