package rolefsmetcd

// The session's life: granted, kept alive, revoked; and the watchdog
// that takes the node out of office before the session can have
// expired at the server.

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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

// keepAlive renews the session every RenewEvery on one keep-alive
// stream, held for as long as it works and opened again when it fails
// (etcd's own client does the same; a KeepAliveOnce per renewal opened
// a stream each time). A session expired at the server is replaced by a
// new one.
//
// etcd answers the requests of a stream in order, each before it reads
// the next, so a response belongs to the oldest request not yet
// answered: the lease is counted from that request's send, as the
// watchdog needs, and a response that names another lease, or comes
// with none outstanding, ends the stream. A request unanswered within
// RequestTimeout ends it too (a member that hangs); the next renewal
// then tries a new one RenewEvery/4 later.
func (e *Elector) keepAlive(ctx context.Context) {
	var ka *kaStream
	defer func() { ka.close() }()
	t := time.NewTimer(e.cfg.RenewEvery)
	defer t.Stop()
	nextSend := time.Now().Add(e.cfg.RenewEvery)
	retry := func(err error) {
		if ctx.Err() == nil {
			e.report(fmt.Errorf("rolefsmetcd: keep-alive: %w", err))
		}
		ka.close()
		ka = nil
		nextSend = minTime(nextSend, time.Now().Add(e.cfg.RenewEvery/4))
	}
	for {
		wake := nextSend
		var replies <-chan kaReply
		if ka != nil {
			replies = ka.replies
			if len(ka.pending) > 0 {
				wake = minTime(wake, ka.pending[0].at.Add(e.cfg.RequestTimeout))
			}
		}
		t.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return
		case r := <-replies:
			if err := e.answered(ka, r); err != nil {
				retry(err)
			} else if e.lease.Load() == 0 {
				nextSend = time.Now() // expired: a new session at once
			}
			continue
		case <-t.C:
		}
		now := time.Now()
		if ka != nil && len(ka.pending) > 0 && !now.Before(ka.pending[0].at.Add(e.cfg.RequestTimeout)) {
			retry(fmt.Errorf("no answer within %v", e.cfg.RequestTimeout))
			continue
		}
		if now.Before(nextSend) {
			continue
		}
		nextSend = now.Add(e.cfg.RenewEvery)
		lease := e.lease.Load()
		switch {
		case e.left.Load():
			return
		case lease == 0:
			if err := e.grant(ctx); err != nil {
				e.report(fmt.Errorf("rolefsmetcd: grant: %w", err))
				nextSend = now.Add(e.cfg.RenewEvery / 4)
			}
			e.poke()
			continue
		case ka == nil:
			var err error
			if ka, err = e.openKeepAlive(ctx); err != nil {
				retry(err)
				continue
			}
		}
		sent := e.now()
		e.stats.keepAlives.Add(1)
		if err := ka.stream.Send(&pb.LeaseKeepAliveRequest{ID: lease}); err != nil {
			retry(err)
			continue
		}
		ka.pending = append(ka.pending, kaRequest{lease: lease, sent: sent, at: now})
	}
}

// A kaStream is the session's keep-alive stream: the requests sent on
// it and not yet answered, oldest first, and its responses, which a
// goroutine of its own receives until the stream ends.
type kaStream struct {
	stream  pb.Lease_LeaseKeepAliveClient
	cancel  context.CancelFunc
	pending []kaRequest
	replies chan kaReply
	done    chan struct{}
}

type kaRequest struct {
	lease int64
	sent  time.Time // on the elector's clock, for the session's validity
	at    time.Time // on the real clock, for the request's timeout
}

type kaReply struct {
	resp *pb.LeaseKeepAliveResponse
	err  error
	at   time.Time // on the real clock, when it came
}

// openKeepAlive opens a keep-alive stream, through an etcd member that
// has a leader (a partitioned member answers with an error at once).
func (e *Elector) openKeepAlive(ctx context.Context) (*kaStream, error) {
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	e.stats.keepAliveStreams.Add(1)
	stream, err := pb.NewLeaseClient(e.cli.ActiveConnection()).LeaseKeepAlive(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	ka := &kaStream{stream: stream, cancel: cancel, replies: make(chan kaReply), done: make(chan struct{})}
	go func() {
		defer close(ka.done)
		for {
			resp, err := stream.Recv()
			select {
			case ka.replies <- kaReply{resp: resp, err: err, at: time.Now()}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ka, nil
}

// close ends the stream and waits for its receiver.
func (ka *kaStream) close() {
	if ka == nil {
		return
	}
	ka.cancel()
	<-ka.done
}

// answered takes in a response of the stream: the oldest request it
// holds is answered. It returns an error when the stream must end.
func (e *Elector) answered(ka *kaStream, r kaReply) error {
	if r.err != nil {
		return r.err
	}
	if len(ka.pending) == 0 {
		return fmt.Errorf("a response for lease %x with no request outstanding", r.resp.ID)
	}
	req := ka.pending[0]
	ka.pending = ka.pending[1:]
	if r.resp.ID != req.lease {
		return fmt.Errorf("a response for lease %x to a request for %x", r.resp.ID, req.lease)
	}
	e.stats.answered.Add(1)
	e.stats.wait.Add(int64(max(r.at.Sub(req.at), 0)))
	switch {
	case r.resp.TTL > 0:
		was := e.valid.valid(e.now())
		e.valid.renewed(req.sent, time.Duration(r.resp.TTL)*time.Second)
		e.signal()
		if !was && e.valid.valid(e.now()) {
			// Valid again: the channels that could not act on a stale
			// session (a Replica that found nobody in office) are
			// looked at now, not at the next safety pass.
			e.poke()
		}
	default:
		// TTL 0: expired at the server, its keys gone. A new session
		// at once.
		if e.lease.CompareAndSwap(req.lease, 0) {
			e.valid.lost()
			e.signal()
			e.report(fmt.Errorf("rolefsmetcd: session %x expired", req.lease))
		}
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// watchdog takes the node out of office on every channel once the
// session can no longer be trusted: at TTL − Margin after the latest
// successful keep-alive's send, or at once when the session is found
// expired. It runs on its own goroutine, so that a request to etcd
// hanging in the loop cannot delay it. While the session stays stale it
// looks again every retryAfter (a cheap scan: no campaign can win
// then).
func (e *Elector) watchdog(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := e.now()
		if !e.valid.valid(now) {
			e.stepDownAll(ctx, true)
		}
		wait := retryAfter
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
