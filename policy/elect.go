package policy

import (
	"fmt"
	"time"

	"github.com/rolefsm/rolefsm"
)

// NodeID identifies a node: 1-based, 0 means none. Packages replica
// and sim use this one type.
type NodeID uint64

// Member is one node of an election view.
type Member struct {
	ID NodeID
	// Healthy reports whether the member was heard from within the
	// heartbeat timeout. The electing node itself counts as healthy
	// whatever this says.
	Healthy bool
	// RTT is the round-trip time measured to the member; it counts only
	// if HasRTT is set. The electing node's own RTT is 0.
	RTT    time.Duration
	HasRTT bool
	// Tail is the member's last reported tail_seq.
	Tail uint64
}

// Result is the kind of an election outcome.
type Result uint8

const (
	// NoEligible means no member could be elected: the view holds
	// neither the electing node nor a healthy peer.
	NoEligible Result = iota
	// SelfWins means the electing node is the new leader.
	SelfWins
	// PeerWins means another member is the new leader.
	PeerWins
)

// String returns the result's name.
func (r Result) String() string {
	switch r {
	case NoEligible:
		return "NoEligible"
	case SelfWins:
		return "SelfWins"
	case PeerWins:
		return "PeerWins"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// Outcome is the result of an election; Winner is set for SelfWins and
// PeerWins.
type Outcome struct {
	Result Result
	Winner NodeID
}

// Transition returns the role change a Candidate makes on this
// outcome: to Leader under ElectionWon if it won, otherwise back to
// Replica under ElectionLost.
func (o Outcome) Transition() (rolefsm.Role, rolefsm.Signal) {
	if o.Result == SelfWins {
		return rolefsm.Leader, rolefsm.ElectionWon
	}
	return rolefsm.Replica, rolefsm.ElectionLost
}

// Policy decides an election from one node's view. Implementations
// must be pure: the same self and members give the same outcome.
type Policy interface {
	// Elect picks the leader among the eligible members: the healthy
	// ones, and self if it is listed. It must not modify members.
	Elect(self NodeID, members []Member) Outcome
	// Name identifies the policy in reports ("upstream", "tail").
	Name() string
}

// Upstream is upstream's elect(): order the eligible members by (RTT to
// self, node id ascending) and pick the first. Self has RTT 0, so it
// wins every RTT tie; a member without an RTT sample ranks after every
// member with one, but is not excluded.
//
// Under symmetric RTT every Candidate elects itself; only the
// dual-leader tiebreak (KeepLeadership) then restores a single leader.
// It is kept for parity with upstream.
var Upstream Policy = upstream{}

// Elect is upstream's elect(): Upstream.Elect.
func Elect(self NodeID, members []Member) Outcome { return Upstream.Elect(self, members) }

// HighestTail orders the eligible members by tail (highest first), then
// node id ascending. It does not depend on who runs it: nodes with the
// same view of health and tails pick the same leader, and the winner is
// a member with the most of the log.
var HighestTail Policy = highestTail{}

// Policies returns the built-in policies.
func Policies() []Policy { return []Policy{HighestTail, Upstream} }

// ParsePolicy returns the built-in policy with the given name.
func ParsePolicy(name string) (Policy, error) {
	for _, p := range Policies() {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("policy: unknown election policy %q (want tail or upstream)", name)
}

type upstream struct{}

func (upstream) Name() string { return "upstream" }

func (upstream) Elect(self NodeID, members []Member) Outcome {
	return pick(self, members, func(a, b Member) bool {
		switch {
		case a.HasRTT != b.HasRTT:
			return a.HasRTT
		case a.HasRTT && a.RTT != b.RTT:
			return a.RTT < b.RTT
		}
		return a.ID < b.ID
	})
}

type highestTail struct{}

func (highestTail) Name() string { return "tail" }

func (highestTail) Elect(self NodeID, members []Member) Outcome {
	return pick(self, members, func(a, b Member) bool {
		if a.Tail != b.Tail {
			return a.Tail > b.Tail
		}
		return a.ID < b.ID
	})
}

// pick returns the eligible member that no other eligible member ranks
// before. It allocates nothing: the view is scanned once.
func pick(self NodeID, members []Member, before func(a, b Member) bool) Outcome {
	var best Member
	found := false
	for i := range members {
		m := members[i]
		if m.ID == self {
			m.Healthy, m.RTT, m.HasRTT = true, 0, true
		} else if m.HasRTT && m.RTT < 0 {
			m.HasRTT = false // a negative sample is no sample
		}
		if !m.Healthy {
			continue
		}
		if !found || before(m, best) {
			best, found = m, true
		}
	}
	switch {
	case !found:
		return Outcome{Result: NoEligible}
	case best.ID == self:
		return Outcome{Result: SelfWins, Winner: self}
	}
	return Outcome{Result: PeerWins, Winner: best.ID}
}

// KeepLeadership is the dual-leader tiebreak: a Leader that hears
// another node claim leadership keeps it if its own tail is longer, or
// the tails are equal and its id is lower. Otherwise it concedes:
// Leader → Replica under PeerLeaderObserved. For two distinct nodes
// exactly one of them keeps leadership given the same two tails.
func KeepLeadership(self NodeID, selfTail uint64, peer NodeID, peerTail uint64) bool {
	return selfTail > peerTail || (selfTail == peerTail && self < peer)
}

// DiskPressureSignal returns the signal that withdraws a node in role r
// under disk pressure: DiskPressureWithdraw from Replica,
// LeaderDiskPressureWithdraw from Leader, CandidateDiskPressureWithdraw
// from Candidate. An Idle node has nothing to withdraw (false), nor has
// a role outside the defined set.
func DiskPressureSignal(r rolefsm.Role) (rolefsm.Signal, bool) {
	switch r {
	case rolefsm.Replica:
		return rolefsm.DiskPressureWithdraw, true
	case rolefsm.Leader:
		return rolefsm.LeaderDiskPressureWithdraw, true
	case rolefsm.Candidate:
		return rolefsm.CandidateDiskPressureWithdraw, true
	}
	return 0, false
}
