package rolefsmetcd

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// Elector campaigns in etcd for every channel of one replica.Node and
// applies what it learns to the node. Create it with New, run it with
// Run beside the Driver's Run; Token, Relinquish, Leave and Stats may
// be called from any goroutine.
type Elector struct {
	cfg Config
	cli *clientv3.Client
	d   *replica.Driver
	id  replica.NodeID

	lease   atomic.Int64 // the session's lease; 0 while none
	left    atomic.Bool  // Leave was called: no new session
	valid   validity
	changed chan struct{} // the session's validity changed: the watchdog looks again
	kick    chan struct{} // a pass is due at once
	ran     atomic.Bool

	// Owned by Run's goroutine.
	view  *view
	cands map[string]int64 // channel → the revision of the campaign's put
	// The channels the next pass visits: every one when full (at the
	// start, after a relist, when the session changed, every Resync),
	// else those named by watch events and by the node's changes
	// (replica.Node.TakeChanges); those of a failed request wait in
	// retry until retryAt.
	full    bool
	dirty   map[string]struct{}
	retry   map[string]struct{}
	retryAt time.Time
	seen    session // the session as the last pass found it
	names   []string
	spare   []string
	again   []string // decided this pass into a Replica following nobody, with nothing sent

	tokMu  sync.Mutex
	tokens map[string]Token
	// won is the create revision of the key of the latest term this
	// session won, per channel (the token it held): a Replica that holds
	// that key again resigns it rather than wait in line on it, so that
	// no two terms share a token. resigned is the revision at which a
	// delete of this session's key committed, per channel, until the
	// view reaches it: till then the key the view still shows is gone.
	// Both are guarded by tokMu (Relinquish runs on its caller's
	// goroutine).
	won, resigned map[string]int64

	stats stats
}

// Stats counts the requests an Elector made to etcd, by kind.
type Stats struct {
	Grants     uint64 `json:"grants"`
	KeepAlives uint64 `json:"keepalives"`
	// KeepAliveStreams counts the keep-alive streams opened: one for
	// the session's life, and one more each time a stream fails.
	KeepAliveStreams uint64 `json:"keepalive_streams"`
	Txns             uint64 `json:"txns"`
	Ranges           uint64 `json:"ranges"`
	Watches          uint64 `json:"watches"`
	Revokes          uint64 `json:"revokes"`
	// Failed counts the requests that returned an error.
	Failed uint64 `json:"failed"`
	// StepDowns counts the times a leader left office because its
	// session could not be renewed in time.
	StepDowns uint64 `json:"step_downs"`
	// KeepAlivesAnswered counts the keep-alives etcd answered, and
	// KeepAliveWait sums their round trips (from the request's send to
	// its answer): the mean wait is one over the other.
	KeepAlivesAnswered uint64        `json:"keepalives_answered"`
	KeepAliveWait      time.Duration `json:"keepalive_wait_ns"`
}

type stats struct {
	grants, keepAlives, keepAliveStreams, txns, ranges, watches, revokes, failed, stepDowns atomic.Uint64

	answered atomic.Uint64 // keep-alives answered
	wait     atomic.Int64  // their round trips, ns
}

// New checks cfg, opens the node's session (one lease for all its
// channels) and reads every election under the prefix. d must drive a
// node created with replica.Config.External. If etcd does not answer
// within the request timeout (or ctx), New returns an error matching
// ErrUnreachable and the node stays without a leader.
func New(ctx context.Context, cfg Config, d *replica.Driver) (*Elector, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("%w: no driver", ErrBadConfig)
	}
	e := &Elector{
		cfg: cfg, cli: cfg.Client, d: d,
		valid:    validity{ttl: cfg.TTL, margin: cfg.Margin},
		changed:  make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		view:     newView(cfg.Prefix),
		cands:    make(map[string]int64),
		tokens:   make(map[string]Token),
		won:      make(map[string]int64),
		resigned: make(map[string]int64),
		full:     true,
		dirty:    make(map[string]struct{}),
		retry:    make(map[string]struct{}),
	}
	external := false
	_ = d.Do(func(n *replica.Node, _ time.Time) error {
		e.id, external = n.ID(), n.External()
		if external {
			// A channel that changes role on the node (Close, disk
			// pressure, Relinquish, Open) is looked at at once.
			n.OnChange(e.poke)
		}
		return nil
	})
	if !external {
		return nil, fmt.Errorf("%w: the node runs its own elections (replica.Config.External is off)", ErrBadConfig)
	}
	if err := e.grant(ctx); err != nil {
		return nil, fmt.Errorf("%w at %v: %w", ErrUnreachable, e.cli.Endpoints(), err)
	}
	if err := e.relist(ctx); err != nil {
		e.revoke(ctx)
		return nil, fmt.Errorf("%w at %v: %w", ErrUnreachable, e.cli.Endpoints(), err)
	}
	return e, nil
}

// now reads the elector's clock.
func (e *Elector) now() time.Time { return e.cfg.Now() }

// Stats returns the requests made so far.
func (e *Elector) Stats() Stats {
	s := &e.stats
	return Stats{
		Grants: s.grants.Load(), KeepAlives: s.keepAlives.Load(), KeepAliveStreams: s.keepAliveStreams.Load(), Txns: s.txns.Load(),
		Ranges: s.ranges.Load(), Watches: s.watches.Load(), Revokes: s.revokes.Load(),
		Failed: s.failed.Load(), StepDowns: s.stepDowns.Load(),
		KeepAlivesAnswered: s.answered.Load(), KeepAliveWait: time.Duration(s.wait.Load()),
	}
}

// Ready returns nil while the node may act on its session (the latest
// keep-alive that succeeded was sent less than TTL − Margin ago), for a
// readiness probe (server.Server.Ready asks it); otherwise an error
// matching ErrNoSession.
func (e *Elector) Ready() error {
	switch {
	case e.lease.Load() == 0:
		return fmt.Errorf("%w: none granted", ErrNoSession)
	case !e.valid.valid(e.now()):
		return fmt.Errorf("%w: no keep-alive succeeded within TTL − Margin (%v)", ErrNoSession, e.cfg.TTL-e.cfg.Margin)
	}
	return nil
}

// Token returns the fencing token of the channel's current term, if
// the node leads it. It is there before the ElectionWon commit, so an
// observer of that record can read it.
func (e *Elector) Token(channel string) (Token, bool) {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	t, ok := e.tokens[channel]
	return t, ok
}

func (e *Elector) setToken(channel string, t Token) {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	e.tokens[channel] = t
}

func (e *Elector) dropToken(channel string) {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	delete(e.tokens, channel)
}

// Relinquish hands the channel over gracefully: the node leaves office
// (GracefulRelinquish, Idle until Rejoin) and resigns its key at once,
// so that another node's campaign can win without waiting for a TTL. On
// a channel the node does not lead it returns replica.ErrNotLeader. An
// error from etcd means the node has left office but its key is not
// deleted yet: the elector retries on every pass, and the key goes with
// the session at the latest.
func (e *Elector) Relinquish(ctx context.Context, channel string) error {
	if err := e.d.Do(func(n *replica.Node, now time.Time) error {
		return n.Relinquish(ctx, now, channel)
	}); err != nil {
		return err
	}
	e.dropToken(channel)
	lease := e.lease.Load()
	if lease == 0 {
		return nil
	}
	// The view belongs to Run's goroutine: the key is built from the
	// configuration alone.
	rev, err := e.txn(ctx, []clientv3.Op{clientv3.OpDelete(electionKey(e.cfg.Prefix+"/", channel, lease))})
	if err == nil {
		e.noteResigned([]string{channel}, rev)
	}
	e.poke()
	return err
}

// noteResigned records that deletes of this session's keys on channels
// committed at rev: until the view reaches rev, the keys it still shows
// there are gone, and not in line.
func (e *Elector) noteResigned(channels []string, rev int64) {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	for _, ch := range channels {
		e.resigned[ch] = max(e.resigned[ch], rev)
	}
}

// gone reports whether this session's key on channel, created at
// created, has been deleted at a revision the view has not reached.
func (e *Elector) gone(channel string, created int64) bool {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	r, ok := e.resigned[channel]
	switch {
	case !ok:
		return false
	case e.view.rev >= r:
		delete(e.resigned, channel) // the view has the delete
		return false
	}
	return created < r
}

// heldTerm reports whether created is the create revision of the key of
// a term this session won on channel.
func (e *Elector) heldTerm(channel string, created int64) bool {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	r, ok := e.won[channel]
	return ok && r == created
}

func (e *Elector) wonTerm(channel string, created int64) {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	e.won[channel] = created
}

// Leave is the graceful shutdown: the node leaves every channel
// (Driver.Leave: relinquish, close, goodbyes) and revokes its session,
// which deletes all its keys at once. Call it before ending Run's
// context.
func (e *Elector) Leave(ctx context.Context) error {
	e.left.Store(true)
	err := e.d.Leave(ctx)
	e.tokMu.Lock()
	clear(e.tokens)
	e.tokMu.Unlock()
	e.revoke(ctx)
	return err
}

func (e *Elector) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Elector) report(err error) {
	e.stats.failed.Add(1)
	if e.cfg.OnError != nil {
		e.cfg.OnError(err)
	}
}

// relist reads every election under the prefix afresh.
func (e *Elector) relist(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	e.stats.ranges.Add(1)
	resp, err := e.cli.Get(ctx, e.view.prefix, clientv3.WithPrefix())
	if err != nil {
		e.stats.failed.Add(1)
		return err
	}
	v := newView(e.cfg.Prefix)
	for _, kv := range resp.Kvs {
		v.put(kv)
	}
	v.rev = resp.Header.Revision
	e.view = v
	return nil
}

// txn sends ops in transactions of at most maxTxnOps and returns the
// revision of the last.
func (e *Elector) txn(ctx context.Context, ops []clientv3.Op) (int64, error) {
	var rev int64
	for len(ops) > 0 {
		k := min(len(ops), maxTxnOps)
		rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
		e.stats.txns.Add(1)
		resp, err := e.cli.Txn(rctx).Then(ops[:k]...).Commit()
		cancel()
		if err != nil {
			e.report(fmt.Errorf("rolefsmetcd: txn: %w", err))
			return 0, err
		}
		rev = resp.Header.Revision
		ops = ops[k:]
	}
	return rev, nil
}

// Run keeps the session alive and the node's roles in line with etcd
// until ctx ends. Then every channel the node leads leaves office
// (PeerLeaderObserved) and the session is revoked, so the others take
// over at once. An Elector runs once.
func (e *Elector) Run(ctx context.Context) error {
	if e.ran.Swap(true) {
		return ErrRunning
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.keepAlive(ctx) })
	wg.Go(func() { e.watchdog(ctx) })
	e.loop(ctx)
	wg.Wait()
	e.stepDownAll(ctx, false)
	e.revoke(ctx)
	return nil
}

// loop applies etcd's elections to the node. Events drive the passes,
// and each visits only the channels it concerns: those a watch event
// names, those the node changed (replica.Node.OnChange), and every
// channel when the session changes (granted, lost, valid again or no
// longer), after a relist, and every Resync, a safety net. A request
// that fails is retried after retryAfter.
func (e *Elector) loop(ctx context.Context) {
	safety := time.NewTicker(e.cfg.Resync)
	defer safety.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var wch clientv3.WatchChan
	var stop context.CancelFunc = func() {}
	defer func() { stop() }()
	watch := func() {
		stop()
		var wctx context.Context
		wctx, stop = context.WithCancel(clientv3.WithRequireLeader(ctx))
		e.stats.watches.Add(1)
		wch = e.cli.Watch(wctx, e.view.prefix, clientv3.WithPrefix(), clientv3.WithRev(e.view.rev+1))
	}
	watch()
	e.pass(ctx) // the first, over every channel
	for {
		timer.Reset(e.nextLook(time.Now()))
		select {
		case <-ctx.Done():
			return
		case wr, ok := <-wch:
			if !ok || wr.Canceled || wr.Err() != nil {
				if ok {
					e.report(fmt.Errorf("rolefsmetcd: watch: %w", wr.Err()))
				}
				wch = nil // relisted below
				break
			}
			e.applyEvents(wr)
		case <-e.kick:
		case <-safety.C:
			e.full = true
		case <-timer.C:
		}
		if wch == nil {
			if err := e.relist(ctx); err != nil {
				if ctx.Err() == nil {
					e.report(fmt.Errorf("rolefsmetcd: read elections: %w", err))
				}
				e.retryAt = time.Now().Add(retryAfter) // and look again then
			} else {
				e.full = true
				watch()
			}
		}
		if !e.retryAt.IsZero() && !time.Now().Before(e.retryAt) {
			for name := range e.retry {
				e.dirty[name] = struct{}{}
			}
			clear(e.retry)
			e.retryAt = time.Time{}
		}
		e.pass(ctx)
	}
}

// retryAfter is how soon a failed request to etcd is sent again.
const retryAfter = 100 * time.Millisecond

// nextLook is how long the loop may sleep when nothing arrives: until a
// retry is due, or until the session stops being valid (a pass must
// then see it: a Candidate cannot win on a stale session).
func (e *Elector) nextLook(now time.Time) time.Duration {
	next := now.Add(time.Hour)
	if !e.retryAt.IsZero() {
		next = minTime(next, e.retryAt)
	}
	if u, ok := e.valid.until(); ok && u.After(now) {
		next = minTime(next, u)
	}
	return next.Sub(now)
}

// applyEvents brings the view up to a watch response, and marks the
// channels its events name.
func (e *Elector) applyEvents(wr clientv3.WatchResponse) {
	// The view is complete up to the last event applied: a response's
	// header may name a later revision when etcd splits a long backlog
	// over several responses.
	for _, ev := range wr.Events {
		if ev.Type == clientv3.EventTypeDelete {
			e.view.del(ev.Kv.Key)
		} else {
			e.view.put(ev.Kv)
		}
		e.view.rev = max(e.view.rev, ev.Kv.ModRevision)
		if ch, _, ok := e.view.parse(string(ev.Kv.Key)); ok {
			e.dirty[ch] = struct{}{}
		}
	}
	if len(wr.Events) == 0 {
		e.view.rev = max(e.view.rev, wr.Header.Revision) // a progress notification
	}
	// A Candidate waits for the view to reach its campaign's revision,
	// which is the revision of the last transaction of its pass (a pass
	// campaigns in transactions of at most maxTxnOps): the events of an
	// earlier one named it before the view had caught up.
	for name, rev := range e.cands {
		if rev <= e.view.rev {
			e.dirty[name] = struct{}{}
		}
	}
}

// session is what a pass needs of the session: a change of it is a
// pass over every channel.
type session struct {
	lease int64
	valid bool
}

// pass makes one decision per channel it visits under the driver's lock
// (plan), then sends the campaigns and resignations it decided on.
func (e *Elector) pass(ctx context.Context) {
	if e.left.Load() {
		return
	}
	lease := e.lease.Load()
	var ops []clientv3.Op
	var campaigns, touched []string
	_ = e.d.Do(func(n *replica.Node, now time.Time) error {
		ops, campaigns, touched = e.plan(ctx, n, now, lease)
		return nil
	})
	if len(ops) == 0 {
		return
	}
	rev, err := e.txn(ctx, ops)
	e.committed(ops, rev, err)
	e.campaigned(campaigns, rev, err)
	if err != nil {
		for _, name := range touched {
			e.retry[name] = struct{}{}
		}
		e.retryAt = time.Now().Add(retryAfter)
	}
}

// plan decides the channels of n that this pass visits (decide), applies
// each decision to the node and keeps the tokens in line; it returns the
// operations for etcd, the channels they campaign for, and the channels
// they concern. It sends nothing: testdata/pass/*.txt runs it against
// a real Node and a view it writes by hand.
func (e *Elector) plan(ctx context.Context, n *replica.Node, now time.Time, lease int64) (ops []clientv3.Op, campaigns, touched []string) {
	valid := lease != 0 && e.valid.valid(e.now())
	if s := (session{lease: lease, valid: valid}); s != e.seen {
		e.seen, e.full = s, true
	}
	names := e.visits(n)
	for _, name := range names {
		if n.Coordinator(name) == nil {
			// Removed from the node (or never held): its term is over,
			// and a key of this session there would keep the others
			// following a node that no longer holds the channel.
			e.dropToken(name)
			delete(e.cands, name)
			if _, mine := e.view.has(name, lease); mine && lease != 0 {
				ops = append(ops, clientv3.OpDelete(e.view.key(name, lease)))
				touched = append(touched, name)
			}
			continue
		}
		// One decision, or two: a Replica that stands on a key already
		// in line is decided again at once, a Candidate whose campaign
		// is in the view.
		for again := true; again; {
			el := e.election(n, name, lease, valid)
			if el.role != rolefsm.Leader {
				e.dropToken(name)
			}
			if el.role != rolefsm.Candidate {
				delete(e.cands, name)
			}
			dc := decide(el)
			if dc.dropToken {
				e.dropToken(name)
			}
			if dc.withToken {
				// The token is there before the commit, so that an
				// observer of ElectionWon can read it.
				e.setToken(name, Token{Key: e.view.key(name, lease), Revision: el.created})
			}
			if !e.apply(ctx, n, now, name, dc) {
				if dc.withToken {
					e.dropToken(name)
				}
				break
			}
			again = dc.verb == stand && el.mine
			if dc.verb == elect {
				delete(e.cands, name) // decided: no longer waiting for the view
			}
			if dc.won {
				e.wonTerm(name, el.created)
			}
			if ((dc.verb == elect && !dc.won) || dc.verb == stepDown) && dc.leader == 0 && !dc.campaign && !dc.resign {
				// A Replica following nobody, and nothing sent to etcd whose
				// watch event would bring it back: look again next pass.
				e.again = append(e.again, name)
			}
			if dc.campaign {
				ops = append(ops, e.campaign(e.view.key(name, lease), lease))
				campaigns = append(campaigns, name)
			}
			if dc.resign {
				ops = append(ops, clientv3.OpDelete(e.view.key(name, lease)))
			}
			if dc.campaign || dc.resign {
				touched = append(touched, name)
			}
		}
	}
	// The node's changes this pass made (its own decisions) need no
	// second look: what follows them comes back as watch events, except
	// where a decision left a Replica following nobody and sent nothing
	// (a Candidate that lost on a stale session, a leader whose key was
	// already gone), which marked itself to be looked at again: it may
	// have to stand.
	e.spare = n.TakeChanges(e.spare[:0])
	for _, name := range e.again {
		e.dirty[name] = struct{}{}
	}
	e.again = e.again[:0]
	return ops, campaigns, touched
}

// visits returns the channels this pass visits, sorted, and forgets
// them: every channel on a full pass, else those marked and those the
// node changed.
func (e *Elector) visits(n *replica.Node) []string {
	names := n.TakeChanges(e.names[:0])
	if e.full {
		names = append(names, n.Channels()...)
		// And the elections this session has a key in: a channel
		// removed from the node still has one to resign.
		lease := e.lease.Load()
		for ch, keys := range e.view.chans {
			if _, ok := keys[lease]; ok && lease != 0 {
				names = append(names, ch)
			}
		}
		e.full = false
	}
	for name := range e.dirty {
		names = append(names, name)
	}
	clear(e.dirty)
	slices.Sort(names)
	names = slices.Compact(names)
	e.names = names
	return names
}

// committed notes the deletes of this session's keys among ops, once
// their transactions committed (at rev, the last one's revision, or
// later than any one's: a view at rev holds them all).
func (e *Elector) committed(ops []clientv3.Op, rev int64, err error) {
	if err != nil {
		return // a failed delete is sent again; the key may still stand
	}
	var chans []string
	for _, op := range ops {
		if op.IsDelete() {
			if ch, _, ok := e.view.parse(string(op.KeyBytes())); ok {
				chans = append(chans, ch)
			}
		}
	}
	e.noteResigned(chans, rev)
}

// campaigned records the outcome of the transaction that carried the
// campaigns: committed at rev, or failed with err (retried on the next
// pass).
func (e *Elector) campaigned(campaigns []string, rev int64, err error) {
	for _, name := range campaigns {
		if err == nil {
			e.cands[name] = rev
		} else {
			delete(e.cands, name)
		}
	}
}

// election gathers what decide needs of one channel: its role, the
// view's keys, the campaign and the token.
func (e *Elector) election(n *replica.Node, name string, lease int64, valid bool) election {
	el := election{role: n.Coordinator(name).Role(), valid: valid, viewRev: e.view.rev}
	own, mine := e.view.has(name, lease)
	mine = mine && lease != 0
	var except int64 // a lease whose key the view shows but etcd has deleted
	if mine && e.gone(name, own.created) {
		mine, except = false, lease
	}
	el.mine = mine
	el.held = mine && e.heldTerm(name, own.created)
	ldLease, ld, hasLd := e.view.leader(name, except)
	el.hasLeader, el.leading, el.created = hasLd, hasLd && ldLease == lease, ld.created
	// The leader to follow if it is not this session: nobody if the key
	// names this node (one left by its previous run: a key of another
	// session is never this node's office), or a node outside the
	// channel's replica set.
	if hasLd && ldLease != lease && ld.node != e.id && n.InReplicaSet(name, ld.node) {
		el.other = ld.node
	}
	el.campaign, el.campaigning = e.cands[name]
	if !el.campaigning && el.mine && !el.held {
		// A key waiting in line: the view holds it, so it is complete
		// up to its creation.
		el.campaign, el.campaigning = own.created, true
	}
	el.token, el.hasToken = e.Token(name)
	return el
}

// apply does the decision's verb to the node, and reports whether it
// did (a stale decision is refused by the node and changes nothing).
func (e *Elector) apply(ctx context.Context, n *replica.Node, now time.Time, name string, dc decision) bool {
	switch dc.verb {
	case follow:
		_ = n.Follow(now, name, dc.leader) // a Replica follows whom it is told
	case stand:
		return n.Stand(ctx, now, name) == nil
	case elect:
		winner := dc.leader
		if dc.won {
			winner = e.id
		}
		return n.Elected(ctx, now, name, winner) == nil
	case stepDown:
		return n.StepDown(ctx, now, name, dc.leader) == nil
	}
	return true
}

func (e *Elector) campaign(key string, lease int64) clientv3.Op {
	return clientv3.OpPut(key, strconv.FormatUint(uint64(e.id), 10), clientv3.WithLease(clientv3.LeaseID(lease)))
}
