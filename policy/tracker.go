package policy

import (
	"errors"
	"fmt"
	"time"
)

// NodeID identifies a node of the replica set.
type NodeID uint64

// ErrNegativeRTT is returned by Tracker.SampleRTT for an RTT below zero.
var ErrNegativeRTT = errors.New("policy: negative RTT")

// Tracker is one node's view of its peers, built from the heartbeats it
// receives: when each peer was last heard, the tail it reported, its
// RTT, and which peer this node follows as leader. It applies the
// Heartbeat rule to that view and never reads a clock: every method
// that needs the time takes it.
//
// Unlike upstream, a node that follows no leader is not exempt from the
// rule: LeaderLost counts from the moment it began to wait, so a
// Replica that never hears a leader still stands for election instead
// of waiting forever.
//
// A Tracker is not safe for concurrent use.
type Tracker struct {
	self  NodeID
	rule  Heartbeat
	peers []peerState

	leader    NodeID
	following bool
	since     time.Time // when the leader was adopted, or the wait for one began
}

type peerState struct {
	id        NodeID
	lastSeen  time.Time
	lastClaim time.Time // last heartbeat in which the peer claimed Leader
	tail      uint64
	rtt       time.Duration
	hasRTT    bool
	heard     bool
	claimed   bool
}

// NewTracker returns an empty view for node self under rule, waiting
// for a leader since now.
func NewTracker(self NodeID, rule Heartbeat, now time.Time) *Tracker {
	return &Tracker{self: self, rule: rule, since: now}
}

// Rule returns the heartbeat rule the tracker applies.
func (t *Tracker) Rule() Heartbeat { return t.rule }

func (t *Tracker) peer(id NodeID) *peerState {
	for i := range t.peers {
		if t.peers[i].id == id {
			return &t.peers[i]
		}
	}
	t.peers = append(t.peers, peerState{id: id})
	return &t.peers[len(t.peers)-1]
}

// Heard records a heartbeat from id, received at at, that reported the
// given tail and whether id claimed to be Leader. A heartbeat older
// than the newest one already heard from id changes nothing, so
// reordered delivery cannot move a peer back in time. Heartbeats from
// the node itself are ignored.
func (t *Tracker) Heard(id NodeID, at time.Time, tail uint64, claimsLeader bool) {
	if id == t.self {
		return
	}
	p := t.peer(id)
	if p.heard && at.Before(p.lastSeen) {
		return
	}
	p.lastSeen, p.tail, p.heard = at, tail, true
	if claimsLeader {
		p.lastClaim, p.claimed = at, true
	}
}

// SampleRTT records the latest round-trip time measured to id. A
// negative RTT is an error matching ErrNegativeRTT and changes nothing.
func (t *Tracker) SampleRTT(id NodeID, rtt time.Duration) error {
	if rtt < 0 {
		return fmt.Errorf("%w: %v to node %d", ErrNegativeRTT, rtt, id)
	}
	if id == t.self {
		return nil
	}
	p := t.peer(id)
	p.rtt, p.hasRTT = rtt, true
	return nil
}

// Healthy reports whether id has been heard from within the rule's
// timeout at now. The node itself is always healthy.
func (t *Tracker) Healthy(id NodeID, now time.Time) bool {
	if id == t.self {
		return true
	}
	for i := range t.peers {
		if t.peers[i].id == id {
			return t.peers[i].heard && !t.rule.Silent(t.peers[i].lastSeen, now)
		}
	}
	return false
}

// Follow makes id this node's leader as of now. The timeout runs from
// now or from id's last heartbeat, whichever is later.
func (t *Tracker) Follow(id NodeID, now time.Time) {
	t.leader, t.following, t.since = id, true, now
}

// Unfollow drops the leader: the node waits for one from now on.
func (t *Tracker) Unfollow(now time.Time) {
	t.leader, t.following, t.since = 0, false, now
}

// Leader returns the leader this node follows, if any.
func (t *Tracker) Leader() (NodeID, bool) { return t.leader, t.following }

// LeaderLost reports whether the node should stand for election at now
// (the MissedHeartbeats condition): its leader has not claimed
// leadership in a heartbeat for the rule's timeout, counted from the
// last such heartbeat or from when it was adopted, whichever is later;
// or it follows no leader and has waited that long. Heartbeats in which
// the followed node does not claim Leader (it won an election in this
// node's view but never took office) do not count: they would keep the
// node waiting forever.
func (t *Tracker) LeaderLost(now time.Time) bool {
	last := t.since
	if t.following {
		for i := range t.peers {
			if p := &t.peers[i]; p.id == t.leader && p.claimed && p.lastClaim.After(last) {
				last = p.lastClaim
			}
		}
	}
	return t.rule.Silent(last, now)
}

// Members appends to dst the election view at now: the node itself
// (RTT 0, the given tail) and every peer it has heard from, each marked
// healthy or not, with its last reported tail and RTT sample. Passing a
// reused dst[:0] makes it allocation-free.
func (t *Tracker) Members(now time.Time, selfTail uint64, dst []Member) []Member {
	dst = append(dst, Member{ID: t.self, Healthy: true, HasRTT: true, Tail: selfTail})
	for i := range t.peers {
		p := &t.peers[i]
		if !p.heard {
			continue
		}
		dst = append(dst, Member{
			ID:      p.id,
			Healthy: !t.rule.Silent(p.lastSeen, now),
			RTT:     p.rtt,
			HasRTT:  p.hasRTT,
			Tail:    p.tail,
		})
	}
	return dst
}
