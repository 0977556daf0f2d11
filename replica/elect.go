package replica

// The heartbeat election's rules, by role: a Replica follows the
// leader it hears and waits for one (follow, waitForLeader), and stands
// when its leader is lost (leaderLost, deadline); every role hears a
// heartbeat (heard: a Replica adopts or keeps a leader, a Leader
// concedes to one that outranks it); a Candidate elects (runElection).
// Each rule is pinned by a script under testdata/.

import (
	"context"
	"math"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

func (n *Node) follow(ch *Channel, id NodeID, tail uint64, claimed bool) {
	ch.leader, ch.following, ch.leaderGone, ch.leaderLeft = id, true, false, false
	ch.leaderTail, ch.leaderClaimed = tail, claimed
	ch.hadLeader = ch.hadLeader || id != 0
	ch.since, ch.claimAt, ch.contact = n.now, 0, n.now
}

func (n *Node) waitForLeader(ch *Channel) {
	ch.leader, ch.following, ch.leaderGone, ch.leaderLeft = 0, false, false, false
	ch.leaderTail, ch.leaderClaimed = 0, false
	ch.since, ch.claimAt, ch.contact = n.now, 0, n.now
}

// ownSilence is upstream's MissedHeartbeats condition: the leader
// followed has not claimed Leader for the timeout, counted from its
// latest claim or from its adoption, whichever is later; or the channel
// follows nobody and has waited that long. Heartbeats in which the
// followed node speaks as a Replica do not count: they would keep a node
// waiting forever for a leader that never took office.
func (n *Node) ownSilence(ch *Channel) bool {
	if ch.following && ch.leaderGone {
		return true
	}
	return n.silent(n.lastWord(ch))
}

// lastWord is when the silence ownSilence measures began.
func (n *Node) lastWord(ch *Channel) int64 {
	last := ch.since
	if ch.following {
		last = max(last, ch.claimAt)
	}
	return last
}

// leaderLost is the MissedHeartbeats condition: ownSilence, and, under
// Corroborated evidence, no member of the replica set reports hearing
// the leader within the timeout either; both the node's grace late (a
// Driver's DeadlineGrace, 0 for a Node ticked by hand). A goodbye is
// acted on at once.
func (n *Node) leaderLost(ch *Channel) bool {
	return n.deadline(ch) <= n.now
}

// deadline is when leaderLost becomes true if nothing is heard: the
// timeout after the leader's last word, or later while the reports
// vouch for it, and the grace after that.
func (n *Node) deadline(ch *Channel) int64 {
	if ch.following && ch.leaderGone {
		return n.now
	}
	d := n.silenceEnds(ch)
	if d > math.MaxInt64-n.grace {
		return math.MaxInt64
	}
	return d + n.grace
}

// silenceEnds is when the leader counts as lost by the rule alone: the
// timeout after its last word, or, under Corroborated evidence, when the
// reports stop vouching for it, whichever is later.
func (n *Node) silenceEnds(ch *Channel) int64 {
	last := n.lastWord(ch)
	timeout := int64(n.rule.Timeout())
	if last > math.MaxInt64-timeout {
		return math.MaxInt64
	}
	if last+timeout > n.now {
		// Its own silence has not run out: the reports cannot matter
		// before then, and a wake earlier than needed only costs a
		// scan. So the common case never looks at them.
		return last + timeout
	}
	end := last + timeout
	if until, ok := n.lossy(ch); ok {
		// A second timeout, while the leader's link counts as lossy.
		end = max(end, min(sat(end, timeout), until))
	}
	if n.unwitnessed(ch) {
		// A second timeout, while no other member is heard: no
		// report can say whether it lost the leader too.
		end = max(end, sat(sat(last, timeout), timeout))
	}
	if _, until, ok := n.vouched(ch); ok && until > end {
		return until
	}
	return end
}

// lossMemory is how long, in timeouts, a gap in the leader's heartbeat
// numbers keeps its link counted as lossy.
const lossMemory = 10

// lossy reports whether, under Corroborated evidence, the leader ch
// follows has lately lost heartbeats on the way here (a gap in its
// numbers within the last lossMemory timeouts: peer.gapAt), and until
// when that holds: while it does, the leader is held lost only after a
// second timeout of silence. On a link that loses batches, the leader's
// claims and the members' reports are lost together often enough that
// one timeout of silence, with no report to vouch, is no proof of
// death; as Lifeguard (hashicorp/memberlist's awareness) waits longer
// when the node itself misses messages. A clean link costs nothing: a
// real death there fails over after one timeout, as before, for a dead
// leader leaves a silence, not a gap. On a lossy one it costs up to a
// timeout more. Only the leader's own link counts: a false stand needs
// its claims lost, and a gap elsewhere (another member's link, or a
// member's key holder skipping numbers) does not slow the failover.
func (n *Node) lossy(ch *Channel) (until int64, ok bool) {
	if n.evidence != Corroborated || !ch.following || !ch.leaderClaimed || ch.leaderLeft {
		return 0, false
	}
	l := n.peer(ch.leader)
	if l == nil || l.gapAt == never {
		return 0, false
	}
	until = sat(l.gapAt, lossMemory*int64(n.rule.Timeout()))
	return until, until > n.now
}

// heard applies one entry from peer id.
func (n *Node) heard(ctx context.Context, ch *Channel, id NodeID, e Entry) {
	if e.Role != rolefsm.Leader {
		if ch.following && ch.leader == id {
			// Its leader speaks as a Replica: it has left office, so
			// the next claim from anyone is followed at once. If it
			// says goodbye, there is no leader to wait for: the
			// channel stands on its next Tick.
			// Either way the reports stop vouching for it, and the
			// deadline may come nearer: the next Tick looks again.
			ch.leaderClaimed, ch.leaderLeft = false, true
			ch.leaderGone = e.Role == rolefsm.Idle
			n.wake = n.now
			n.tell()
		}
		return
	}
	if n.external {
		// The backend names the leader: a claim only refreshes the
		// leader's tail when it comes from the node followed.
		if ch.following && ch.leader == id {
			if !ch.leaderClaimed || ch.leaderLeft {
				n.tell() // the entry now says it has a live leader
			}
			ch.leaderTail, ch.leaderClaimed, ch.leaderLeft = e.Tail, true, false
			ch.claimAt, ch.contact = n.now, n.now
		}
		return
	}
	switch ch.coord.Role() {
	case rolefsm.Replica:
		if ch.following && ch.leader == id {
			ch.leaderTail, ch.leaderClaimed, ch.leaderLeft = e.Tail, true, false
			ch.claimAt, ch.contact = n.now, n.now
			return
		}
		// Stay with the current leader only if its claim to office is
		// fresh, as heard here (a report says the leader is heard, not
		// that it still leads this channel), and it outranks the
		// newcomer.
		if ch.following && ch.leaderClaimed && !n.ownSilence(ch) &&
			policy.KeepLeadership(ch.leader, ch.leaderTail, id, e.Tail) {
			return
		}
		n.follow(ch, id, e.Tail, true)
	case rolefsm.Leader:
		if policy.KeepLeadership(n.id, ch.tail, id, e.Tail) && !n.deaf(&n.peers[ch.member(id).peer]) {
			return
		}
		if n.transition(ctx, ch, rolefsm.Replica, rolefsm.PeerLeaderObserved) == nil {
			n.follow(ch, id, e.Tail, true)
		}
	}
}

// runElection decides a Candidate's election over the channel's
// replica set: a peer is eligible on what it said itself within the
// timeout: a batch of it heard, and an entry for this channel as Leader
// or Replica (not a goodbye). Its latest batch may leave the channel
// out: a Candidate sends none, and peers that stand a tick apart must
// still count each other, or each would elect itself. (A channel that
// goes Idle says so in an entry; one that stops appearing silently ages
// out with the timeout.)
//
// A Candidate that stood because its leader said goodbye weighs its own
// tail as it last announced it, as its peers see it: their tails stopped
// growing with the leader's, but each Candidate's view holds the others'
// as of their last heartbeat, and weighing its own live tail against
// those, two Candidates could each find themselves ahead and both win.
func (n *Node) runElection(ctx context.Context, ch *Channel) {
	self := ch.tail
	if ch.following && ch.leaderGone {
		self = min(self, ch.announced)
	}
	n.view = append(n.view[:0], policy.Member{ID: n.id, Healthy: true, HasRTT: true, Tail: self})
	view := n.view
	for i := range ch.members {
		m := &ch.members[i]
		if m.stamp == 0 {
			continue // never heard on this channel
		}
		p := &n.peers[m.peer]
		view = append(view, policy.Member{
			ID:      m.id,
			Healthy: !m.gone && !n.silent(m.at) && !n.silent(p.lastSeen),
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

// unwitnessed reports whether, under Corroborated evidence, the replica
// set of ch has members besides this node and the leader it follows,
// and nobody in it has been heard within the timeout (a batch of any
// channel: a member's reports are of nodes, not channels). Then no
// report can say whether they lost the leader too. The leader's node
// counts as well: if its batches arrive without a claim on ch, its link
// works and its silence on ch is real. A leader that has said it left
// office is its own witness.
func (n *Node) unwitnessed(ch *Channel) bool {
	if n.evidence != Corroborated || !ch.following || !ch.leaderClaimed {
		return false // a leader that spoke as a Replica claims nothing: see ledVouches
	}
	others := false
	for i := range ch.members {
		m := &ch.members[i]
		if !n.silent(n.peers[m.peer].lastSeen) {
			return false
		}
		others = others || m.id != ch.leader
	}
	return others
}
