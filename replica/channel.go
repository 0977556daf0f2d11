package replica

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// ChannelConfig describes a channel to open.
type ChannelConfig struct {
	// Name identifies the channel between nodes; it also names its
	// coordinator. It must not be empty.
	Name string
	// Replicas is the channel's replica set: node ids, 1-based, the
	// node itself among them.
	Replicas []NodeID
	// Tail is the channel's tail_seq as found on the node's disk.
	Tail uint64
	// DiskPressure opens the channel under disk pressure, and Closed
	// opens it closed: either keeps it Idle (until relief, or Rejoin),
	// as for a node that restarts in that state.
	DiskPressure, Closed bool
	// Options configure the channel's coordinator (logger, observers).
	// The coordinator is named Name and must start Idle.
	Options []rolefsm.Option
}

// Channel is one channel's state on its node: a handle that reads it
// without looking the name up. It belongs to the Node's goroutine, as
// the Node does.
type Channel struct {
	node    *Node
	removed bool
	name    string
	coord   *rolefsm.Coordinator
	members []member // the replica set but self, by id
	tail    uint64

	leader        NodeID // the leader followed, if following
	following     bool
	leaderTail    uint64 // its last reported tail
	leaderClaimed bool   // it has claimed Leader since it was adopted
	since         int64  // when it was adopted, or the wait for one began
	claimAt       int64  // its latest claim of Leader after since, or 0
	contact       int64  // its latest claim, or the start of the wait
	lease         rolefsm.Lease

	leaderGone bool // the leader followed said goodbye

	pressure bool // under disk pressure
	parked   bool // closed or relinquished: Idle until Rejoin
}

// member is one peer of a channel's replica set, as the channel sees
// it. Health and RTT are the peer's, kept once per node.
type member struct {
	id    NodeID
	peer  int32  // index into the node's peers
	stamp uint64 // the peer's batch that last carried this channel; 0: none
	tail  uint64 // the tail it reported then
	gone  bool   // that entry was a goodbye
}

func (ch *Channel) member(id NodeID) *member {
	lo, hi := 0, len(ch.members)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ch.members[m].id < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(ch.members) && ch.members[lo].id == id {
		return &ch.members[lo]
	}
	return nil
}

// Open starts holding a channel: its coordinator is created and the
// channel joins as a Replica (CapabilitySelected) that waits for a
// leader. An empty name, a channel already open, or a replica set that
// is empty, lacks the node, repeats a node or holds node 0 is an error
// that changes nothing.
func (n *Node) Open(ctx context.Context, now time.Time, cfg ChannelConfig) error {
	if cfg.Name == "" {
		return fmt.Errorf("%w: a channel needs a name", ErrBadConfig)
	}
	if m := n.limits.MaxChannelName; m > 0 && len(cfg.Name) > m {
		return fmt.Errorf("%w: a channel name of %d bytes, and the transport carries at most %d", ErrBadConfig, len(cfg.Name), m)
	}
	if _, ok := n.chans[cfg.Name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateChannel, cfg.Name)
	}
	// The replica set but self, by id: validated before anything
	// changes.
	members := make([]member, 0, len(cfg.Replicas))
	self := false
	for _, id := range cfg.Replicas {
		if id == n.id {
			self = true
			continue
		}
		members = append(members, member{id: id})
	}
	slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.id, b.id) })
	switch {
	case len(cfg.Replicas) == 0:
		return fmt.Errorf("%w: channel %q: empty", ErrBadReplicaSet, cfg.Name)
	case len(members) > 0 && members[0].id == 0:
		return fmt.Errorf("%w: channel %q: node 0 (ids are 1-based)", ErrBadReplicaSet, cfg.Name)
	case !self:
		return fmt.Errorf("%w: channel %q: %v does not hold this node (%d)", ErrBadReplicaSet, cfg.Name, cfg.Replicas, n.id)
	case len(members) != len(cfg.Replicas)-1:
		return fmt.Errorf("%w: channel %q: node %d twice", ErrBadReplicaSet, cfg.Name, n.id)
	}
	for i := 1; i < len(members); i++ {
		if members[i].id == members[i-1].id {
			return fmt.Errorf("%w: channel %q: node %d twice", ErrBadReplicaSet, cfg.Name, members[i].id)
		}
	}
	opts := append(slices.Clip(cfg.Options), rolefsm.WithName(cfg.Name))
	c, err := rolefsm.NewCoordinator(opts...)
	if err != nil {
		return fmt.Errorf("replica: channel %q: %w", cfg.Name, err)
	}
	if r := c.Role(); r != rolefsm.Idle {
		return fmt.Errorf("%w: channel %q: its coordinator starts %v, not Idle", ErrBadConfig, cfg.Name, r)
	}
	n.advance(now)
	ch := &Channel{node: n, name: cfg.Name, coord: c, tail: cfg.Tail, members: members,
		pressure: cfg.DiskPressure, parked: cfg.Closed}
	// Room for every peer at once: most channels bring new ones only
	// to a new node.
	n.peers = slices.Grow(n.peers, len(members))
	n.byID = slices.Grow(n.byID, len(members))
	n.ids = slices.Grow(n.ids, len(members))
	for i := range members {
		members[i].peer = n.addPeer(members[i].id)
	}
	n.chans[cfg.Name] = ch
	n.order = append(n.order, ch)
	return n.join(ctx, ch)
}

func (n *Node) channel(name string) (*Channel, error) {
	ch := n.chans[name]
	if ch == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownChannel, name)
	}
	return ch, nil
}

// Close closes the channel on this node (ChannelClose, from any role):
// it stays Idle, sending no heartbeat, until Rejoin. Closing a closed
// channel does nothing.
func (n *Node) Close(ctx context.Context, now time.Time, name string) error {
	ch, err := n.channel(name)
	if err != nil {
		return err
	}
	n.advance(now)
	ch.parked = true
	return n.transition(ctx, ch, rolefsm.Idle, rolefsm.ChannelClose)
}

// Remove closes the channel and forgets it: later heartbeats for it are
// dropped as for an unknown channel, and it may be opened again.
func (n *Node) Remove(ctx context.Context, now time.Time, name string) error {
	if err := n.Close(ctx, now, name); err != nil {
		return err
	}
	ch := n.chans[name]
	ch.removed = true
	delete(n.chans, name)
	n.order = slices.DeleteFunc(n.order, func(c *Channel) bool { return c == ch })
	for _, m := range ch.members {
		n.peers[m.peer].refs--
	}
	return nil
}

// Relinquish hands over the channel gracefully: a Leader goes Idle
// (GracefulRelinquish) and stays so until Rejoin. On any other role it
// returns an error matching ErrNotLeader and changes nothing.
func (n *Node) Relinquish(ctx context.Context, now time.Time, name string) error {
	ch, err := n.channel(name)
	if err != nil {
		return err
	}
	if r := ch.coord.Role(); r != rolefsm.Leader {
		return fmt.Errorf("%w: channel %q is %v here", ErrNotLeader, name, r)
	}
	n.advance(now)
	if err := n.transition(ctx, ch, rolefsm.Idle, rolefsm.GracefulRelinquish); err != nil {
		return err
	}
	ch.parked = true
	return nil
}

// Leave takes the node out of every channel at once, for a graceful
// shutdown: it relinquishes what it leads (GracefulRelinquish), closes
// every channel (ChannelClose), and returns a goodbye to each peer: a
// batch with an Idle entry for every channel they share. A follower
// that hears its leader say goodbye stands on its next Tick instead of
// waiting out the timeout (upstream's peers wait three heartbeats), and
// nobody elects a node that said goodbye. The messages are valid until
// the next Tick or Leave.
func (n *Node) Leave(ctx context.Context, now time.Time) []Message {
	n.advance(now)
	for _, ch := range n.order {
		if ch.coord.Role() == rolefsm.Leader {
			_ = n.transition(ctx, ch, rolefsm.Idle, rolefsm.GracefulRelinquish)
		}
		ch.parked = true
		_ = n.transition(ctx, ch, rolefsm.Idle, rolefsm.ChannelClose) // from Idle: nothing
	}
	n.out = n.out[:0]
	return n.heartbeat(func(*Channel) (rolefsm.Role, bool) { return rolefsm.Idle, true })
}

// Rejoin ends a Close or Relinquish: the channel joins as a Replica
// again (CapabilitySelected), unless it is under disk pressure, in
// which case it joins once relieved.
func (n *Node) Rejoin(ctx context.Context, now time.Time, name string) error {
	ch, err := n.channel(name)
	if err != nil {
		return err
	}
	n.advance(now)
	ch.parked = false
	return n.join(ctx, ch)
}

// SetDiskPressure starts or ends disk pressure on the channel. Pressure
// withdraws it to Idle under the signal for its role
// (policy.DiskPressureSignal: the Leader's, Replica's or Candidate's
// own); relief makes it join as a Replica again, unless it is closed.
func (n *Node) SetDiskPressure(ctx context.Context, now time.Time, name string, on bool) error {
	ch, err := n.channel(name)
	if err != nil {
		return err
	}
	n.advance(now)
	ch.pressure = on
	if !on {
		return n.join(ctx, ch)
	}
	if sig, ok := policy.DiskPressureSignal(ch.coord.Role()); ok {
		return n.transition(ctx, ch, rolefsm.Idle, sig)
	}
	return nil
}

// SetTail records the channel's local tail_seq as its log grows. A tail
// below the current one is an error and changes nothing.
func (n *Node) SetTail(name string, tail uint64) error {
	ch, err := n.channel(name)
	if err != nil {
		return err
	}
	if tail < ch.tail {
		return fmt.Errorf("%w: channel %q from %d to %d", ErrTailBackwards, name, ch.tail, tail)
	}
	ch.tail = tail
	return nil
}

// join makes an Idle channel a Replica waiting for a leader, unless it
// is parked or under pressure.
func (n *Node) join(ctx context.Context, ch *Channel) error {
	if ch.parked || ch.pressure || ch.coord.Role() != rolefsm.Idle {
		return nil
	}
	if err := n.transition(ctx, ch, rolefsm.Replica, rolefsm.CapabilitySelected); err != nil {
		return err
	}
	n.waitForLeader(ch)
	return nil
}

// transition commits a role change. The caller's context reaches the
// observers, but its cancellation cannot stop a decision half-way.
func (n *Node) transition(ctx context.Context, ch *Channel, to rolefsm.Role, sig rolefsm.Signal) error {
	if ctx.Done() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	_, err := ch.coord.Transition(ctx, to, sig)
	n.wake = n.now
	return err
}

func (n *Node) follow(ch *Channel, id NodeID, tail uint64, claimed bool) {
	ch.leader, ch.following, ch.leaderGone = id, true, false
	ch.leaderTail, ch.leaderClaimed = tail, claimed
	ch.since, ch.claimAt, ch.contact = n.now, 0, n.now
}

func (n *Node) waitForLeader(ch *Channel) {
	ch.leader, ch.following, ch.leaderGone = 0, false, false
	ch.leaderTail, ch.leaderClaimed = 0, false
	ch.since, ch.claimAt, ch.contact = n.now, 0, n.now
}

// leaderLost is the MissedHeartbeats condition: the leader followed has
// not claimed Leader for the timeout, counted from its latest claim or
// from its adoption, whichever is later; or the channel follows nobody
// and has waited that long. Heartbeats in which the followed node
// speaks as a Replica do not count: they would keep a node waiting
// forever for a leader that never took office.
func (n *Node) leaderLost(ch *Channel) bool {
	if ch.following && ch.leaderGone {
		return true
	}
	last := ch.since
	if ch.following {
		last = max(last, ch.claimAt)
	}
	return n.silent(last)
}

// deadline is when leaderLost becomes true if nothing is heard.
func (n *Node) deadline(ch *Channel) int64 {
	if ch.following && ch.leaderGone {
		return n.now
	}
	last := ch.since
	if ch.following {
		last = max(last, ch.claimAt)
	}
	if timeout := int64(n.rule.Timeout()); last <= math.MaxInt64-timeout {
		return last + timeout
	}
	return math.MaxInt64
}

// heard applies one entry from peer id.
func (n *Node) heard(ctx context.Context, ch *Channel, id NodeID, e Entry) {
	if e.Role != rolefsm.Leader {
		if ch.following && ch.leader == id {
			// Its leader speaks as a Replica: it has left office, so
			// the next claim from anyone is followed at once. If it
			// says goodbye, there is no leader to wait for: the
			// channel stands on its next Tick.
			ch.leaderClaimed = false
			ch.leaderGone = e.Role == rolefsm.Idle
			if ch.leaderGone {
				n.wake = n.now
			}
		}
		return
	}
	if n.external {
		// The backend names the leader: a claim only refreshes the
		// leader's tail when it comes from the node followed.
		if ch.following && ch.leader == id {
			ch.leaderTail, ch.leaderClaimed = e.Tail, true
			ch.claimAt, ch.contact = n.now, n.now
		}
		return
	}
	switch ch.coord.Role() {
	case rolefsm.Replica:
		if ch.following && ch.leader == id {
			ch.leaderTail, ch.leaderClaimed = e.Tail, true
			ch.claimAt, ch.contact = n.now, n.now
			return
		}
		// Stay with the current leader only if its claim to office is
		// fresh and it outranks the newcomer.
		if ch.following && ch.leaderClaimed && !n.leaderLost(ch) &&
			policy.KeepLeadership(ch.leader, ch.leaderTail, id, e.Tail) {
			return
		}
		n.follow(ch, id, e.Tail, true)
	case rolefsm.Leader:
		if policy.KeepLeadership(n.id, ch.tail, id, e.Tail) {
			return
		}
		if n.transition(ctx, ch, rolefsm.Replica, rolefsm.PeerLeaderObserved) == nil {
			n.follow(ch, id, e.Tail, true)
		}
	}
}

// runElection decides a Candidate's election over the channel's
// replica set: a peer is eligible when it was heard within the timeout
// and its latest batch carried this channel (it still leads or
// replicates it).
func (n *Node) runElection(ctx context.Context, ch *Channel) {
	n.view = append(n.view[:0], policy.Member{ID: n.id, Healthy: true, HasRTT: true, Tail: ch.tail})
	view := n.view
	for i := range ch.members {
		m := &ch.members[i]
		if m.stamp == 0 {
			continue // never heard on this channel
		}
		p := &n.peers[m.peer]
		view = append(view, policy.Member{
			ID:      m.id,
			Healthy: m.stamp == p.beat && !m.gone && !n.silent(p.lastSeen),
			RTT:     p.rtt,
			HasRTT:  p.hasRTT,
			Tail:    m.tail,
		})
	}
	n.view = view
	out := n.elect.Elect(n.id, view)
	to, sig := out.Transition()
	if n.transition(ctx, ch, to, sig) != nil {
		return
	}
	switch out.Result {
	case policy.SelfWins:
		ch.lease = ch.coord.Lease()
		n.waitForLeader(ch) // it follows nobody while it leads
	case policy.PeerWins:
		n.follow(ch, out.Winner, 0, false)
	default:
		n.waitForLeader(ch)
	}
}

// Status is one channel as its node sees it.
type Status struct {
	Channel    string
	Role       rolefsm.Role
	Generation uint64
	Tail       uint64
	// Leader is the node the channel follows as leader: the node itself
	// when it leads, 0 when it follows nobody.
	Leader NodeID
	// LeaderTail is the tail the followed leader last reported, and
	// LeaderClaimed whether it has claimed Leader since it was followed
	// (a Candidate's chosen winner has not, until its first heartbeat as
	// Leader).
	LeaderTail    uint64
	LeaderClaimed bool
	// Contact is when the followed leader last claimed Leader, or when
	// the channel began to wait for one.
	Contact time.Time
	// Lease is the fencing token taken when the node last won the
	// channel's election; it holds only while that term lasts.
	Lease rolefsm.Lease
	// DiskPressure and Parked (closed or relinquished) keep the channel
	// Idle.
	DiskPressure, Parked bool
}

// Status returns the channel's state.
func (n *Node) Status(name string) (Status, error) {
	ch, err := n.channel(name)
	if err != nil {
		return Status{}, err
	}
	return ch.Status(), nil
}

// Channel returns the handle of a channel the node holds, or nil. A
// removed channel's handle keeps reporting its last state.
func (n *Node) Channel(name string) *Channel { return n.chans[name] }

// Name returns the channel's name.
func (ch *Channel) Name() string { return ch.name }

// Coordinator returns the channel's coordinator.
func (ch *Channel) Coordinator() *rolefsm.Coordinator { return ch.coord }

// Lease returns the fencing token the node took when it last won the
// channel's election (the zero Lease if it never did). An append
// guarded by Coordinator().Holds(lease) cannot land once the node has
// left that term.
func (ch *Channel) Lease() rolefsm.Lease { return ch.lease }

// Follows returns the leader the channel follows (0 when none, and
// while the node leads), the tail it last reported, and whether it has
// claimed Leader since it was followed: a Replica catches up from it
// once it has.
func (ch *Channel) Follows() (leader NodeID, tail uint64, claimed bool) {
	if !ch.following {
		return 0, 0, false
	}
	return ch.leader, ch.leaderTail, ch.leaderClaimed
}

// Contact returns when the followed leader last claimed Leader, or when
// the channel began to wait for one: the silence the MissedHeartbeats
// rule measures starts no earlier.
func (ch *Channel) Contact() time.Time { return ch.node.time(ch.contact) }

// Status returns the channel's state.
func (ch *Channel) Status() Status {
	n := ch.node
	l := ch.coord.Lease()
	s := Status{
		Channel: ch.name, Role: l.Role, Generation: l.Generation, Tail: ch.tail,
		LeaderTail: ch.leaderTail, LeaderClaimed: ch.leaderClaimed,
		Contact: n.time(ch.contact), Lease: ch.lease,
		DiskPressure: ch.pressure, Parked: ch.parked,
	}
	switch {
	case l.Role == rolefsm.Leader:
		s.Leader = n.id
	case ch.following:
		s.Leader = ch.leader
	}
	return s
}

// Coordinator returns the channel's coordinator, or nil for a channel
// the node does not hold.
func (n *Node) Coordinator(name string) *rolefsm.Coordinator {
	if ch := n.chans[name]; ch != nil {
		return ch.coord
	}
	return nil
}

// Lease returns the channel's Lease (see Channel.Lease).
func (n *Node) Lease(name string) (rolefsm.Lease, error) {
	ch, err := n.channel(name)
	if err != nil {
		return rolefsm.Lease{}, err
	}
	return ch.lease, nil
}

// Channels returns the names of the channels the node holds, in the
// order they were opened.
func (n *Node) Channels() []string {
	names := make([]string, len(n.order))
	for i, ch := range n.order {
		names[i] = ch.name
	}
	return names
}
