package replica

// What a channel is, read: Status and the Channel handle's accessors.

import (
	"time"

	"github.com/rolefsm/rolefsm"
)

// Status is one channel as its node sees it.
type Status struct {
	Channel    string
	Role       rolefsm.Role
	Generation uint64
	Tail       uint64
	// Leader is the node the channel follows as leader: the node itself
	// when it leads, 0 when it follows nobody: a Candidate, an Idle
	// channel, or a Replica whose leader has spoken as a non-Leader since
	// its latest claim (it stepped down or said goodbye).
	Leader NodeID
	// LeaderTail is the tail the followed leader last reported, and
	// LeaderClaimed whether it has claimed Leader since it was followed
	// (a Candidate's chosen winner has not, until its first heartbeat as
	// Leader; under Config.External, its latest entry here counts if it
	// claimed office, for heartbeats repeat only changes there).
	LeaderTail    uint64
	LeaderClaimed bool
	// Contact is when the followed leader last claimed Leader, or when
	// the channel began to wait for one.
	Contact time.Time
	// Vouched is the latest contact with the followed leader that a
	// member of the replica set reports, or, once that leader has
	// spoken as a Replica (Leader is then 0), when the latest entry
	// came that says its sender has a live leader (zero when nothing
	// counts: see Corroborated). CutOff is set on a Replica whose own
	// silence has run the timeout while the members still vouch
	// (Channel.VouchedUntil): cut off alone from a leader the others
	// hear, it waits instead of standing.
	Vouched time.Time
	CutOff  bool
	// Lossy is set while the leader the Replica follows has lately lost
	// heartbeats on the way here (a gap in its numbers within ten
	// timeouts, under Corroborated evidence): it is then held lost only
	// after two timeouts of silence.
	Lossy bool
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

// InReplicaSet reports whether node id is in the channel's replica set
// (the node itself is); false for a channel the node does not hold. An
// election backend asks it before it follows a leader.
func (n *Node) InReplicaSet(channel string, id NodeID) bool {
	ch := n.chans[channel]
	return ch != nil && (id == n.id || ch.member(id) != nil)
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
// claimed Leader since it was followed (under Config.External, see
// Status.LeaderClaimed): a Replica catches up from it once it has.
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

// Vouched returns the latest contact with the followed leader that a
// member of the replica set reports (once that leader has spoken as a
// Replica: the latest entry of a member that says it has a live
// leader), and whether one counts (see Corroborated).
func (ch *Channel) Vouched() (time.Time, bool) {
	v, _, ok := ch.node.vouched(ch)
	if !ok {
		return time.Time{}, false
	}
	return ch.node.time(v), true
}

// VouchedUntil returns until when the members' reports keep a Replica
// whose own silence has run the timeout from standing, and whether one
// counts (see Corroborated): the timeout after the latest contact
// reported, or after a report that showed its member had missed fewer
// than MissThreshold-1 heartbeats, whichever is later, and never past
// the timeout after that member's latest entry.
func (ch *Channel) VouchedUntil() (time.Time, bool) {
	_, until, ok := ch.node.vouched(ch)
	if !ok {
		return time.Time{}, false
	}
	return ch.node.time(until), true
}

// LossyUntil returns until when a Replica's leader is held lost only
// after two timeouts of silence, and whether that holds now: the leader
// lost heartbeats on the way here within the last ten timeouts (a gap
// in their numbers), under Corroborated evidence. The second timeout
// ends with it.
func (ch *Channel) LossyUntil() (time.Time, bool) {
	if ch.coord.Role() != rolefsm.Replica {
		return time.Time{}, false
	}
	until, ok := ch.node.lossy(ch)
	if !ok {
		return time.Time{}, false
	}
	return ch.node.time(until), true
}

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
	case l.Role == rolefsm.Replica && ch.following && !ch.leaderLeft:
		// A Candidate follows nobody; nor does a Replica whose leader
		// has since spoken as a non-Leader (stepped down, said goodbye).
		s.Leader = ch.leader
	}
	if v, until, ok := n.vouched(ch); ok {
		s.Vouched = n.time(v)
		s.CutOff = l.Role == rolefsm.Replica && n.ownSilence(ch) && until > n.now
	}
	_, s.Lossy = ch.LossyUntil()
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
