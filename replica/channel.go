package replica

import (
	"cmp"
	"context"
	"fmt"
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
	changed bool // listed in node.changed
	name    string
	coord   *rolefsm.Coordinator
	members []member // the replica set but self, by id
	tail    uint64
	// announced is the tail the latest heartbeat carried.
	announced uint64
	// Under External, told is the entry the heartbeats last carried
	// (its Channel left empty), if toldOK, and toldAt when the first
	// heartbeat carried it (see Config.External).
	told   Entry
	toldOK bool
	toldAt int64

	leader        NodeID // the leader followed, if following
	following     bool
	leaderTail    uint64 // its last reported tail
	leaderClaimed bool   // it has claimed Leader since it was adopted
	since         int64  // when it was adopted, or the wait for one began
	claimAt       int64  // its latest claim of Leader after since, or 0
	contact       int64  // its latest claim, or the start of the wait
	lease         rolefsm.Lease

	leaderGone bool // the leader followed said goodbye
	leaderLeft bool // the leader followed spoke as a non-Leader since its latest claim
	sayIdle    bool // gone Idle since the last heartbeat: the next one carries an Idle entry
	// hadLeader: the channel has followed a leader, or led, since it
	// opened; until then its elections are cold starts (not thrash).
	hadLeader bool

	pressure bool // under disk pressure
	parked   bool // closed or relinquished: Idle until Rejoin
}

// member is one peer of a channel's replica set, as the channel sees
// it. Health and RTT are the peer's, kept once per node.
type member struct {
	id    NodeID
	stamp uint64 // the peer's batch that last carried this channel; 0: none
	tail  uint64 // the tail it reported then
	at    int64  // when that entry arrived
	peer  int32  // index into the node's peers
	gone  bool   // that entry was a goodbye
	led   bool   // that entry said its sender had a live leader (Entry.HasLeader)
	leads bool   // that entry was a claim of Leader
	// 40 bytes: a node of 100,000 channels holds one per peer each.
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
		p := &n.peers[m.peer]
		if p.refs--; p.refs == 0 {
			p.seen = nil // its places may hold removed channels, and it may never speak again
			// Its batches are refused until a channel holds it again,
			// unread: the first one then is a first contact, not a gap.
			p.heard, p.gapAt = false, never
		}
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
	n.sayIdle = 0 // the goodbyes say it of every channel
	return n.heartbeat(true, func(ch *Channel) (rolefsm.Role, bool) { ch.sayIdle = false; return rolefsm.Idle, true })
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
	if tail != ch.tail {
		ch.tail = tail
		n.tell()
	}
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
	if sig == rolefsm.MissedHeartbeats && !ch.hadLeader {
		// No leader since the channel opened: a first election, which
		// is not thrash (every node's, at a cluster's first start).
		ctx = rolefsm.ColdStart(ctx)
	}
	t, err := ch.coord.Transition(ctx, to, sig)
	if err == nil && to == rolefsm.Leader {
		ch.hadLeader = true
	}
	if err == nil && to == rolefsm.Idle && (t.From == rolefsm.Leader || t.From == rolefsm.Replica || t.From == rolefsm.Candidate) {
		// Handed over, closed or withdrawn under disk pressure: a
		// heartbeat says so at once, so that the followers of a leader
		// stand on their next tick rather than wait out the timeout
		// (as after a goodbye), and nobody elects this node.
		ch.sayIdle = true
		n.sayIdle++
	}
	n.wake = n.now
	n.tell()
	if err == nil && n.external && t.From != t.To {
		n.noteChange(ch)
	}
	return err
}
