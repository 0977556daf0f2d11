package replica

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// Config configures a Node.
type Config struct {
	// ID is the node's own id, 1 or more.
	ID NodeID
	// Heartbeat is the failure-detection rule (default 500 ms × 3).
	Heartbeat policy.Heartbeat
	// Policy decides elections (default policy.HighestTail).
	Policy policy.Policy
	// Phase delays the node's first heartbeat after the time given to
	// NewNode, from 0 (at once) up to, not including, one interval.
	// Nodes started together can spread their heartbeats with it.
	Phase time.Duration
	// External hands leadership to an election backend outside the
	// node, such as rolefsmetcd's: the node then never stands, elects,
	// follows a claim or concedes on its own, and the backend reports
	// what it decides with Stand, Elected, StepDown and Follow (see
	// external.go). Heartbeats still carry roles and tails, but only
	// what changed: the backend, not the heartbeats, tells the nodes
	// who is alive. An entry goes out in every heartbeat for
	// ExternalRepeats intervals after it changed (the Idle entry of a
	// channel gone Idle too; Leave's goodbye goes out once), every live
	// entry once every ExternalRefresh intervals, and every entry in
	// the next heartbeat to a peer newly heard, restarted, or back
	// after a silence of two refreshes and the timeout. A heartbeat
	// with nothing to carry is not sent, and the node needs no Tick for
	// it (Due): at rest a node wakes, and sends each peer one batch,
	// every ExternalRefresh intervals, and a peer counts as healthy
	// (Peers) within two refreshes and the timeout. A Replica told to
	// follow a leader takes that leader's latest entry as its claim, if
	// it is of the leader's current boot and no older than a peer at
	// rest may go unheard. A role changed on a channel's coordinator
	// behind the node's back goes out with the next heartbeat built.
	// Kubernetes' node heartbeats work the same way: a Lease says the
	// kubelet is alive, and the node's status is written when it
	// changes, or every few minutes.
	External bool
	// Evidence is what a Replica weighs before it stands: Corroborated
	// asks the replica set; OwnSilence is upstream's rule. The default
	// is Corroborated, or OwnSilence under policy.Upstream, so that
	// upstream's election is upstream's behaviour exactly.
	Evidence Evidence
	// Limits are what the node's transport can carry (a transport
	// states them: udp.Transport.Limits); Open refuses a channel whose
	// name the transport could not send. The zero Limits bound nothing.
	Limits Limits
}

// Limits are what a transport can carry, as it states them.
type Limits struct {
	// MaxChannelName is the longest channel name, in bytes (0: no
	// bound).
	MaxChannelName int
}

// Node is the decision logic of one node for every channel it holds.
// It is not safe for concurrent use: one goroutine (the Driver, or the
// simulator) calls it. Time never goes back for a Node: a now earlier
// than one already passed in counts as the latest.
type Node struct {
	id       NodeID
	rule     policy.Heartbeat
	interval int64 // ns
	elect    policy.Policy
	external bool
	evidence Evidence
	limits   Limits
	epoch    time.Time
	now      int64     // ns since epoch: the latest time passed in
	last     time.Time // the time last passed in
	nextBeat int64
	// wake is the earliest time a channel may need a Tick's attention
	// (an election, a timeout): between heartbeats, a Tick before it
	// leaves the channels alone. Hearing a leader only moves a deadline
	// later; the changes that can bring one closer (every role change
	// the node makes, a leader that says goodbye or speaks as a
	// Replica, a reporter's restart) set wake to now.
	wake  int64
	scans uint64 // how many Ticks visited the channels, for the tests
	// grace is how late a deadline is acted on (a Driver's
	// DeadlineGrace; 0 for a Node ticked by hand).
	grace int64
	// sayIdle counts the channels gone Idle since the last heartbeat
	// (handed over, closed, withdrawn): the next Tick sends one at once,
	// telling their peers.
	sayIdle int

	peers []peer   // in the order first seen: indices are stable
	byID  []int32  // indices into peers, sorted by id
	ids   []NodeID // the ids of byID, for the search
	dense []int32  // index+1 of the peer with each id below denseIDs, 0 if none
	chans map[string]*Channel
	order []*Channel // in the order opened: the order of ticks and entries

	// changed lists, under External, the channels whose role changed
	// since the backend last took them (TakeChanges), and onChange is
	// the backend's cue (OnChange).
	changed  []string
	onChange func()

	out  []Message
	view []policy.Member
	said []Report // the reports of the latest heartbeat
	// Under External: untold says an entry may have changed, or a
	// change is still to be repeated, or a peer waits for every entry,
	// since the latest heartbeat; refreshAt is when the next heartbeat
	// carries every entry. Between them the node sends nothing and
	// needs no Tick.
	untold    bool
	refreshAt int64
	// slot is the time the heartbeat being built was due (its place in
	// the schedule, however late the Tick; now, for one off the
	// schedule): changes are dated by it, so that a late Tick does not
	// make a change go out once more.
	slot int64
}

// Under Config.External, a changed entry goes out in every heartbeat
// for this many intervals (so that one lost batch, or two, cannot hide
// a change until the refresh; an Idle entry too, which no refresh
// repeats),
// and every live entry once every ExternalRefresh intervals.
const (
	ExternalRepeats = 3
	ExternalRefresh = 10
)

// peer is what the node knows of another node, shared by all channels.
type peer struct {
	id      NodeID
	index   int32  // its own index in the node's peers
	refs    int    // channels whose replica set holds it
	batches uint64 // batches received from it
	beat    uint64 // its latest heartbeat, by the sender's Seq (plus base) or our count
	sent    uint64 // the batches sent to it: the Seq of the latest
	// incarnation is the sender's latest boot heard, and base the beat
	// it had reached when that boot began: a restarted sender numbers
	// its heartbeats from 1 again, and they count from base.
	incarnation, base uint64
	heard             bool
	lastSeen          int64
	rtt               time.Duration
	hasRTT            bool
	out               []Entry // the next batch to it
	// refresh: under External, the next heartbeat to it carries every
	// entry (it was newly heard, or restarted, and knows none).
	refresh bool
	// What it reports, dated in the node's clock: saw[k] when it last
	// heard the peer of index k (never if unreported) and when it said
	// so, heardMe when it last heard this node, and met when it was
	// first heard after a silence of the timeout (or at all, or in a
	// new boot).
	saw          []sighting
	heardMe, met int64
	// namedMe: a report since met named this node (a sender that sends
	// none, under OwnSilence or over a transport that drops them, or
	// that left this node out, gives no evidence either way).
	namedMe bool
	// gapAt is when a heartbeat of it last arrived after a gap in its
	// numbers (Batch.Seq): one or more heartbeats of the same process
	// were lost on the way (see lossy).
	gapAt int64
	// seen is the channel (and its member for the peer) at each place
	// of the peer's latest heartbeat, at most refs of them, and cursor
	// the place of its next entry (see lookup).
	seen   []seen
	cursor int
}

// seen is an entry's channel at one place of a peer's heartbeat.
type seen struct {
	ch *Channel
	m  *member
}

// rewind starts a new heartbeat of p at its first place, and lets go of
// the places past what p can send (a channel removed since).
func (p *peer) rewind() {
	p.cursor = 0
	if len(p.seen) > p.refs {
		clear(p.seen[p.refs:])
		p.seen = p.seen[:p.refs]
	}
}

// lookup finds the channel an entry from peer p names, and p's member in
// it. A peer sends its channels in the same order every heartbeat, so
// the entry at p's cursor most often names the channel at that place of
// its latest one: a comparison of names instead of a map lookup and a
// member search. Anything else (a first heartbeat, a channel opened,
// closed or gone from the peer's batches, datagrams out of order) is
// looked up, and remembered at that place.
func (n *Node) lookup(p *peer, name string) (*Channel, *member) {
	i := p.cursor
	p.cursor++
	if i < len(p.seen) {
		if s := p.seen[i]; s.ch != nil && !s.ch.removed && s.ch.name == name {
			return s.ch, s.m
		}
	}
	ch := n.chans[name]
	var m *member
	if ch != nil {
		m = ch.member(p.id)
	}
	switch {
	case i < len(p.seen):
		p.seen[i] = seen{ch: ch, m: m}
	case i == len(p.seen) && i < p.refs:
		p.seen = append(p.seen, seen{ch: ch, m: m})
	}
	return ch, m
}

// NewNode returns a node holding no channel, its clock at now.
func NewNode(cfg Config, now time.Time) (*Node, error) {
	iv := cfg.Heartbeat.Interval()
	switch {
	case cfg.ID == 0:
		return nil, fmt.Errorf("%w: node id 0 (ids are 1-based)", ErrBadConfig)
	case cfg.Phase < 0 || cfg.Phase >= iv:
		return nil, fmt.Errorf("%w: phase %v, want 0 up to the heartbeat interval %v", ErrBadConfig, cfg.Phase, iv)
	case cfg.Evidence > OwnSilence:
		return nil, fmt.Errorf("%w: evidence %v", ErrBadConfig, cfg.Evidence)
	case cfg.Limits.MaxChannelName < 0:
		return nil, fmt.Errorf("%w: limits: max channel name %d", ErrBadConfig, cfg.Limits.MaxChannelName)
	}
	if cfg.Policy == nil {
		cfg.Policy = policy.HighestTail
	}
	if cfg.Evidence == DefaultEvidence {
		cfg.Evidence = Corroborated
		if cfg.Policy == policy.Upstream {
			cfg.Evidence = OwnSilence
		}
	}
	return &Node{
		id:       cfg.ID,
		rule:     cfg.Heartbeat,
		interval: int64(iv),
		elect:    cfg.Policy,
		external: cfg.External,
		evidence: cfg.Evidence,
		limits:   cfg.Limits,
		epoch:    now,
		nextBeat: int64(cfg.Phase),
		chans:    make(map[string]*Channel),
	}, nil
}

// ID returns the node's id.
func (n *Node) ID() NodeID { return n.id }

// External reports whether an election backend decides the node's
// leadership (Config.External).
func (n *Node) External() bool { return n.external }

// Heartbeat returns the node's failure-detection rule.
func (n *Node) Heartbeat() policy.Heartbeat { return n.rule }

// advance moves the node's clock to now, never back, and returns it as
// nanoseconds since the node's epoch.
func (n *Node) advance(now time.Time) int64 {
	// The common case: many inputs at one instant. Identical values are
	// a cache hit (Equal would also match the same instant in another
	// form, and costs more).
	if now == n.last { //nolint:staticcheck // a cache key, not a comparison of instants
		return n.now
	}
	n.last = now
	n.now = max(n.now, int64(now.Sub(n.epoch)))
	return n.now
}

func (n *Node) time(t int64) time.Time { return n.epoch.Add(time.Duration(t)) }

// silent applies the heartbeat rule to a silence that began at since.
func (n *Node) silent(since int64) bool { return n.rule.Expired(time.Duration(n.now - since)) }

// denseIDs bounds the ids looked up in a table rather than searched:
// clusters number their nodes from 1, so every heartbeat finds its
// sender in constant time.
const denseIDs = 4096

func (n *Node) peer(id NodeID) *peer {
	if id < denseIDs {
		if id < NodeID(len(n.dense)) && n.dense[id] > 0 {
			return &n.peers[n.dense[id]-1]
		}
		return nil
	}
	i, ok := slices.BinarySearch(n.ids, id)
	if !ok {
		return nil
	}
	return &n.peers[n.byID[i]]
}

// addPeer counts one more channel holding id, adding the peer if new,
// and returns its index.
func (n *Node) addPeer(id NodeID) int32 {
	i, ok := slices.BinarySearch(n.ids, id)
	if !ok {
		k := int32(len(n.peers))
		n.peers = append(n.peers, peer{id: id, index: k, heardMe: never, gapAt: never})
		n.byID = slices.Insert(n.byID, i, k)
		n.ids = slices.Insert(n.ids, i, id)
		if id < denseIDs {
			for int(id) >= len(n.dense) {
				n.dense = append(n.dense, 0)
			}
			n.dense[id] = k + 1
		}
	}
	k := n.byID[i]
	n.peers[k].refs++
	return k
}

// ObserveRTT records the latest round-trip time measured to peer, for
// the elections of every channel. A negative RTT, or a node in no
// replica set of this node, is an error that changes nothing.
func (n *Node) ObserveRTT(id NodeID, rtt time.Duration) error {
	if rtt < 0 {
		return fmt.Errorf("%w: %v to node %d", ErrNegativeRTT, rtt, id)
	}
	p := n.peer(id)
	if p == nil || p.refs == 0 {
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, id)
	}
	p.rtt, p.hasRTT = rtt, true
	return nil
}

// PeerStatus is what a node knows of one peer.
type PeerStatus struct {
	ID NodeID
	// Heard reports whether a batch ever arrived from it; LastHeard is
	// when the latest did.
	Heard     bool
	LastHeard time.Time
	// Healthy reports whether it was heard within the heartbeat
	// timeout, as of the node's latest time (under Config.External,
	// within two refreshes, 2 × ExternalRefresh intervals, and the
	// timeout).
	Healthy bool
	// RTT is the latest round-trip time observed, if HasRTT.
	RTT    time.Duration
	HasRTT bool
	// Batches counts the batches received from it.
	Batches uint64
	// Channels counts the open channels whose replica set holds it.
	Channels int
}

// Peers returns every peer of the node's channels, by id.
func (n *Node) Peers() []PeerStatus {
	var ps []PeerStatus
	for _, k := range n.byID {
		p := &n.peers[k]
		if p.refs == 0 {
			continue
		}
		s := PeerStatus{ID: p.id, Heard: p.heard, RTT: p.rtt, HasRTT: p.hasRTT, Batches: p.batches, Channels: p.refs}
		if p.heard {
			s.LastHeard = n.time(p.lastSeen)
			s.Healthy = !n.silent(p.lastSeen)
			if n.external {
				s.Healthy = !n.silent(p.lastSeen + n.restWindow())
			}
		}
		ps = append(ps, s)
	}
	return ps
}

// Step takes in one heartbeat batch received at now. A batch from the
// node itself or from a node in none of its replica sets is an error
// and changes nothing. Otherwise the sender counts as heard, and each
// entry is applied to its channel, except entries for a channel the
// node does not hold, from a sender outside the channel's replica set,
// with a role other than Leader or Replica, or repeating a channel of
// the batch: those are dropped and listed in the returned *StepError.
func (n *Node) Step(ctx context.Context, now time.Time, b Batch) error {
	if b.From == n.id {
		return fmt.Errorf("%w: node %d", ErrFromSelf, b.From)
	}
	p := n.peer(b.From)
	if p == nil || p.refs == 0 {
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, b.From)
	}
	if err := checkReports(b.From, b.Heard); err != nil {
		return err
	}
	base, restarted := p.base, false
	switch {
	case b.Incarnation < p.incarnation:
		return fmt.Errorf("%w: incarnation %d of node %d after %d", ErrStaleBatch, b.Incarnation, b.From, p.incarnation)
	case b.Incarnation > p.incarnation:
		base, restarted = p.beat, true // restarted: its numbering starts over
	}
	beat := base + b.Seq
	switch {
	case b.Seq == 0:
		beat = p.beat + 1
	case beat < p.beat: // older (or past the numbers' range: then base+Seq wraps below base)
		return fmt.Errorf("%w: heartbeat %d from node %d after %d", ErrStaleBatch, b.Seq, b.From, p.beat-p.base)
	}
	t := n.advance(now)
	if restarted || !p.heard {
		// A new process: what the old one heard is not its evidence,
		// and under External it has none of the entries not repeated.
		p.incarnation, p.base, p.heardMe = b.Incarnation, base, never
		for i := range p.saw {
			p.saw[i] = sighting{at: never, told: never}
		}
		n.wake = n.now // a deadline its reports put off may come nearer
	}
	if restarted || !p.heard || n.silent(p.lastSeen) {
		p.met, p.namedMe = t, false // heard again after a silence: its reports start over
		n.wake = n.now              // a witness again: a deadline put off for want of one may come nearer
	}
	if n.external && (restarted || !p.heard || n.silent(p.lastSeen+n.restWindow())) {
		// New, restarted, or back from longer than it can have been at
		// rest: it has none of the entries, or missed changes.
		p.refresh = true
		n.tell()
	}
	if p.heard && !restarted && beat > p.beat+1 {
		p.gapAt = t // heartbeats of this process went missing
	}
	p.heard, p.lastSeen = true, t
	p.batches++
	if beat != p.beat {
		p.rewind()
	}
	p.beat = beat
	n.takeReports(p, t, b.Heard)
	var dropped []EntryError
	for _, e := range b.Entries {
		ch, m := n.lookup(p, e.Channel)
		var err error
		switch {
		case ch == nil:
			err = ErrUnknownChannel
		case e.Role != rolefsm.Leader && e.Role != rolefsm.Replica && e.Role != rolefsm.Idle:
			err = badRoleError(e.Role)
		case m == nil:
			err = ErrNotInReplicaSet
		case m.stamp == beat:
			err = ErrDuplicateEntry
		}
		if err != nil {
			dropped = append(dropped, EntryError{Channel: e.Channel, Err: err})
			continue
		}
		if m.led && !e.HasLeader {
			n.wake = n.now // its reports stop vouching: a deadline may come nearer
		}
		m.stamp, m.tail, m.gone, m.at, m.led, m.leads = beat, e.Tail, e.Role == rolefsm.Idle, t, e.HasLeader, e.Role == rolefsm.Leader
		n.heard(ctx, ch, b.From, e)
	}
	if dropped != nil {
		return &StepError{From: b.From, Dropped: dropped}
	}
	return nil
}

// Due returns when the node next needs a Tick: its next heartbeat, the
// earliest deadline of its channels (a Replica's timeout, with what the
// reports vouch), or at once after an input that changed a role (a
// Candidate elects on the next Tick, an Idle entry goes out). A Tick
// before then changes nothing and sends nothing, so a driver can sleep
// until Due; Step and the methods that change a channel may bring it
// nearer, never put it off, so a driver asks again after each.
func (n *Node) Due() time.Time {
	beat, wake := n.due()
	return n.time(min(beat, wake))
}

// due returns the next heartbeat and the next wake: now (or earlier)
// after an input, or the earliest deadline. Under External, the next
// heartbeat is the refresh while there is nothing new to tell.
func (n *Node) due() (beat, wake int64) {
	beat = n.nextBeat
	if n.external && !n.untold {
		beat = max(beat, n.refreshAt)
	}
	if n.sayIdle > 0 {
		return beat, n.now
	}
	return beat, n.wake
}

// restWindow is, under External, how long a peer at rest may go
// unheard beyond the timeout: two refreshes, so that one lost batch
// does not make it look gone.
func (n *Node) restWindow() int64 { return 2 * ExternalRefresh * n.interval }

// tell notes, under External, that an entry may have changed: the next
// heartbeat looks.
func (n *Node) tell() { n.untold = n.external }

// news reports, under External, whether a heartbeat now carries the
// channel's entry e (ok: there is one; none for a Candidate, nor for an
// Idle channel after its once; r is the channel's role): a change goes
// out in every heartbeat due within ExternalRepeats intervals of the
// first that carried it, the Idle entry of a channel still Idle among
// them (e is then set to it), and notes when the next heartbeat must be
// built to repeat it.
func (n *Node) news(ch *Channel, e *Entry, r rolefsm.Role, ok bool) bool {
	now := Entry{Role: e.Role, HasLeader: e.HasLeader, Tail: e.Tail}
	switch {
	case ok && (!ch.toldOK || now != ch.told):
		ch.told, ch.toldOK, ch.toldAt = now, true, n.slot
	case !ok && r == rolefsm.Idle && ch.toldOK && ch.told.Role == rolefsm.Idle:
		*e = Entry{Channel: ch.name, Role: rolefsm.Idle, Tail: ch.told.Tail} // a goodbye, repeated
	case !ok:
		// A Candidate says nothing: its peers keep what it last said
		// (a Replica's entry, which is news again only if it changed).
		return false
	}
	span := ExternalRepeats * n.interval
	if n.nextBeat-ch.toldAt < span {
		n.untold = true // the next heartbeat repeats it
	}
	return n.slot-ch.toldAt < span
}

// Tick passes time: Candidates elect, Replicas whose leader went silent
// stand for election, and, once per heartbeat interval, a batch goes to
// every peer with which the node shares a channel it leads or
// replicates. The messages returned are valid until the next Tick.
func (n *Node) Tick(ctx context.Context, now time.Time) []Message {
	t := n.advance(now)
	if t >= n.wake || t >= n.nextBeat {
		n.scan(ctx)
	}
	n.out = slices.Grow(n.out[:0], len(n.byID))
	switch {
	case t >= n.nextBeat:
		n.slot = n.nextBeat
		n.nextBeat += n.interval
		if n.nextBeat <= t {
			n.slot = t
			n.nextBeat = t + n.interval // missed beats are skipped, not made up
		}
		if n.external && !n.untold && t < n.refreshAt {
			return n.out // nothing new to tell (Config.External)
		}
	case n.sayIdle == 0:
		return n.out
	default:
		n.slot = t
	}
	// On schedule, or at once because a channel went Idle (Relinquish,
	// Close, disk pressure): its followers hear it now, mid-interval, and stand on
	// their next tick, when the batches they last heard from each other
	// still carry the channel (as after a goodbye). The batch is a whole
	// heartbeat, so the other channels' evidence stays whole.
	n.sayIdle = 0
	return n.heartbeat(false, func(ch *Channel) (rolefsm.Role, bool) {
		r := ch.coord.Role()
		if r == rolefsm.Idle && ch.sayIdle {
			ch.sayIdle = false
			return r, true // once: it handed the channel over
		}
		ch.sayIdle = false
		return r, r == rolefsm.Leader || r == rolefsm.Replica
	})
}

// scan visits every channel: Candidates elect, Replicas whose
// leader went silent stand for election; and it sets wake to the
// earliest deadline left. A node with many channels scans only when a
// deadline is due, and at every heartbeat (which visits every channel
// anyway), so a role changed behind the node's back, on the channel's
// coordinator, is seen within an interval (under External, at the next
// heartbeat built: within ExternalRefresh intervals).
func (n *Node) scan(ctx context.Context) {
	n.scans++
	n.wake = math.MaxInt64
	if n.external {
		return // the backend decides: nothing here has a deadline
	}
	for _, ch := range n.order {
		switch ch.coord.Role() {
		case rolefsm.Candidate:
			n.runElection(ctx, ch)
		case rolefsm.Replica:
			if n.leaderLost(ch) {
				// A rejection (only if someone else drives the
				// coordinator) reaches its observers as a record.
				_ = n.transition(ctx, ch, rolefsm.Candidate, rolefsm.MissedHeartbeats)
				continue
			}
			n.wake = min(n.wake, n.deadline(ch))
		}
	}
}

// heartbeat numbers the next heartbeat and builds its batches: one per
// peer, with an entry for every channel they share for which role says
// there is one to send.
func (n *Node) heartbeat(goodbye bool, role func(ch *Channel) (rolefsm.Role, bool)) []Message {
	said := n.reports()
	for i := range n.peers {
		n.peers[i].out = n.peers[i].out[:0]
	}
	delta := n.external && !goodbye
	refresh := delta && n.now >= n.refreshAt
	if refresh {
		n.refreshAt = n.now + ExternalRefresh*n.interval
	}
	if delta {
		n.untold = false
	}
	refreshing := false // some peer waits for every entry
	for i := range n.peers {
		refreshing = refreshing || n.peers[i].refresh
	}
	for _, ch := range n.order {
		r, ok := role(ch)
		var e Entry
		if ok {
			e = Entry{Channel: ch.name, Role: r, Tail: ch.tail, HasLeader: r == rolefsm.Leader ||
				r == rolefsm.Replica && ch.following && ch.leaderClaimed && !ch.leaderLeft && (n.external || !n.ownSilence(ch))}
			ch.announced = ch.tail
		}
		all := ok // to every member: in heartbeat mode, every entry there is
		switch {
		case delta:
			all = n.news(ch, &e, r, ok) || ok && refresh
		case goodbye:
			ch.toldOK = false // whatever follows Leave is news
		}
		if !all && (!ok || !refreshing) {
			continue // nothing for any member
		}
		for i := range ch.members {
			p := &n.peers[ch.members[i].peer]
			if all || ok && p.refresh {
				p.out = append(p.out, e)
			}
		}
	}
	for _, k := range n.byID {
		if p := &n.peers[k]; len(p.out) > 0 {
			// Numbered per peer: a heartbeat that has nothing for a
			// peer (every channel they share Candidate or Idle here)
			// is not sent to it, and must not look lost there.
			p.sent++
			n.out = append(n.out, Message{To: p.id, Batch: Batch{From: n.id, Seq: p.sent, Entries: p.out, Heard: said}})
		}
		n.peers[k].refresh = false
	}
	return n.out
}
