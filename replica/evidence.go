package replica

// Evidence from the replica set: each heartbeat carries what its
// sender last heard of every node it shares a channel with (Batch.Heard),
// and a Replica whose leader has gone quiet stands only when no member
// of the channel's replica set has heard that leader within the timeout
// either. Raft meets the same problem with PreVote and CheckQuorum,
// SWIM with indirect probes; here the evidence rides on the heartbeats
// that go to every peer once an interval anyway, at no extra message.

import (
	"fmt"
	"math"
	"time"
)

// Evidence is what a node weighs before it decides a leader is lost.
type Evidence uint8

const (
	// DefaultEvidence is Corroborated, except under policy.Upstream,
	// whose election is upstream's only with upstream's rule:
	// OwnSilence.
	DefaultEvidence Evidence = iota
	// Corroborated is the replica set's evidence. A Replica whose
	// leader has claimed office and then gone quiet for the timeout
	// stands only when no member of the channel's replica set that has
	// a live leader there (Entry.HasLeader) reports hearing that leader
	// within the timeout either, dated in the Replica's own clock; one cut off alone from a leader the others
	// hear keeps waiting, as a Replica (Status.CutOff says so). A real
	// death fails over about as fast as under OwnSilence: reports are
	// dated back to when the leader sent what was heard (by half the
	// RTTs), so the Replica waits for the member that heard the leader
	// last, late by at most the links' jitter. A report that showed its
	// member still hearing the leader also vouches for the timeout
	// after it was sent, so that a lost report or two does not make the
	// member look silent (see Channel.VouchedUntil). On a link that
	// loses the leader's heartbeats (a gap in their numbers within ten
	// timeouts: Channel.LossyUntil), the leader is held lost only after two
	// timeouts of silence, not one: a dead leader leaves a silence, not a
	// gap, so a clean link pays nothing. And a Leader that hears
	// a rival Leader which, for a timeout of batches, has reported not
	// hearing it concedes whatever the tiebreak says: the rival cannot
	// hear it to concede in its turn, so two leaders would otherwise
	// keep office for as long as a one-way cut lasts.
	//
	// A Leader that no member hears keeps office (the availability
	// choice today's rule makes for a partitioned side): stepping down
	// alone would leave the channel leaderless where only the Leader's
	// outbound link is bad, and the matrix has no Leader → Replica
	// signal without a rival (PeerLeaderObserved). A rival, once
	// elected by the members that lost it, makes it concede.
	Corroborated
	// OwnSilence is upstream's rule: a Replica stands when it has not
	// heard its leader for the timeout, whatever its peers hear, and a
	// Leader concedes by the tiebreak alone. With policy.Upstream it is
	// upstream's behaviour exactly.
	OwnSilence
)

var evidenceNames = [...]string{"default", "peers", "own"}

// String returns the name ParseEvidence reads: "default", "peers" or
// "own".
func (e Evidence) String() string {
	if int(e) < len(evidenceNames) {
		return evidenceNames[e]
	}
	return fmt.Sprintf("Evidence(%d)", uint8(e))
}

// ParseEvidence reads "default" (DefaultEvidence), "peers"
// (Corroborated) or "own" (OwnSilence).
func ParseEvidence(s string) (Evidence, error) {
	for i, name := range evidenceNames {
		if s == name {
			return Evidence(i), nil
		}
	}
	return 0, fmt.Errorf("%w: evidence %q (want peers, own or default)", ErrBadConfig, s)
}

// never marks a contact that no report has dated.
const never = math.MinInt64

// checkReports refuses a batch whose reports cannot be dated.
func checkReports(from NodeID, rs []Report) error {
	for _, r := range rs {
		switch {
		case r.Node == 0:
			return fmt.Errorf("%w: node %d reports node 0 (ids are 1-based)", ErrBadReport, from)
		case r.Age < 0:
			return fmt.Errorf("%w: node %d reports node %d heard %v ago", ErrBadReport, from, r.Node, r.Age)
		}
	}
	return nil
}

// takeReports dates, in the node's clock t, what peer p reports it
// heard: at the batch's arrival, less the age, less half the RTT to p
// when one is known (the batch's own way here). Each date only moves
// later: a report arriving after a later one (its delay was longer)
// does not undo it.
func (n *Node) takeReports(p *peer, t int64, rs []Report) {
	if p.hasRTT {
		t -= int64(p.rtt / 2) // now t > -2^62
	}
	for _, r := range rs {
		at := t - min(int64(r.Age), 1<<62) // > -2^63, so never stays apart
		if r.Node == n.id {
			p.heardMe, p.namedMe = max(p.heardMe, at), true
			continue
		}
		if r.Age == NeverHeard {
			continue // no contact to date
		}
		q := n.peer(r.Node)
		if q == nil {
			continue // a node none of our channels holds
		}
		k := q.index
		for len(p.saw) <= int(k) {
			p.saw = append(p.saw, sighting{at: never, told: never})
		}
		was := p.saw[k]
		p.saw[k] = sighting{at: max(was.at, at), told: max(was.told, t)}
		if was.at != never && n.lapsed(p, was) != n.lapsed(p, p.saw[k]) {
			// It has now missed MissThreshold-1 heartbeats: its report
			// vouches by contact alone, and a deadline may come nearer.
			n.wake = n.now
		}
	}
}

// lapsed reports whether a sighting shows that its reporter p had
// missed MissThreshold-1 of the node's heartbeats when it reported (less
// a tenth of an interval and half the RTT to p for the schedule's
// jitter and the way here): then it vouches by its contact alone.
func (n *Node) lapsed(p *peer, s sighting) bool {
	slack := int64(n.rule.Interval() / 10)
	if p.hasRTT {
		slack += int64(p.rtt / 2)
	}
	return s.told-s.at >= int64(n.rule.Timeout()-n.rule.Interval())-slack
}

// A sighting is a peer's report of a third node, dated in the node's
// clock: at, when the peer last heard the node; told, when the peer
// said so (its batch's arrival, less half the RTT). Both only move
// later.
type sighting struct{ at, told int64 }

// reports lists what the node last heard of each peer, as of now, for
// the next heartbeat: how long ago the peer sent the latest batch taken
// in from it.
func (n *Node) reports() []Report {
	n.said = n.said[:0]
	if n.evidence != Corroborated || n.external {
		return nil // nobody weighs them: no bytes spent on them
	}
	for _, k := range n.byID {
		p := &n.peers[k]
		switch {
		case p.refs == 0:
		case p.heard:
			// Dated back by half the RTT to it: when it sent what
			// was heard, so that a receiver that is farther from the
			// leader does not stand later than one that is nearer.
			age := time.Duration(n.now - p.lastSeen)
			if p.hasRTT {
				age += min(p.rtt/2, NeverHeard-age)
			}
			n.said = append(n.said, Report{Node: p.id, Age: age})
		default:
			n.said = append(n.said, Report{Node: p.id, Age: NeverHeard})
		}
	}
	return n.said
}

// vouched returns the latest contact with the leader ch follows that a
// member of its replica set reports, until when the reports vouch for
// the leader, and whether the rule lets reports count: the leader has
// claimed office and not since left it (a leader that stepped down is
// heard, but leads nothing), and only members whose latest entry for
// the channel says they have a live leader report.
//
// A member vouches for the timeout after the contact it reports, as
// the node's own contact would. It also vouches for the timeout after
// its report itself when that report showed it had missed fewer than
// MissThreshold-1 of the leader's heartbeats (less a tenth of an
// interval and half the RTT for the schedule's jitter and the way
// here): a member that still heard the leader then and whose later
// reports were lost most likely still does. Under loss, the two
// delays then no longer add up to a false stand: a member's report is
// up to an interval old on arrival and is dated up to an interval
// before it was sent, so by contact alone, one lost heartbeat or
// report in the wrong place made the member's evidence look older than
// the timeout. A real death is not slowed while the reports arrive: by
// the time the node's own silence has run the timeout, each member's
// report from the last interval shows it has missed MissThreshold-1
// heartbeats at least. When that report is lost, the member's previous
// one holds the node back until the next arrives (an interval), and at
// most until the timeout after it. Neither lasts past the timeout after
// the member's latest entry.
//
// Once the leader has spoken as a Replica, the reports of it no longer
// count, and ledVouches says instead whether the channel has a leader
// this node does not hear.
func (n *Node) vouched(ch *Channel) (contact, until int64, ok bool) {
	contact, until = never, never
	if n.evidence != Corroborated || !ch.following || ch.leaderGone {
		return never, never, false
	}
	if ch.leaderLeft {
		if n.external {
			return never, never, false
		}
		return n.ledVouches(ch)
	}
	if !ch.leaderClaimed {
		return never, never, false
	}
	l := n.peer(ch.leader)
	if l == nil {
		return never, never, false
	}
	timeout := int64(n.rule.Timeout())
	for i := range ch.members {
		m := &ch.members[i]
		// Only a member that has a live leader here, by its own latest
		// entry (fresh, no goodbye), vouches: one that stood or elected
		// another may hear the old leader on another channel.
		if m.id == ch.leader || !m.led || m.gone || n.silent(m.at) {
			continue
		}
		p := &n.peers[m.peer]
		if int(l.index) >= len(p.saw) || p.saw[l.index].at == never {
			continue
		}
		s := p.saw[l.index]
		contact = max(contact, s.at)
		u := sat(s.at, timeout)
		if !n.lapsed(p, s) {
			u = max(u, sat(s.told, timeout))
		}
		until = max(until, min(u, sat(m.at, timeout)))
	}
	return contact, until, contact != never
}

// ledVouches is vouched for a Replica whose leader has since spoken as
// a Replica (it left office, most likely for a rival this node cannot
// hear): a member whose latest entry, heard within the timeout, says it
// has a live leader (Entry.HasLeader) vouches that the channel has one,
// for the timeout after that entry; the old leader counts too. So a
// Replica cut off from the new leader keeps waiting while the others
// hear it, and stands once none of them says so.
func (n *Node) ledVouches(ch *Channel) (contact, until int64, ok bool) {
	contact, until = never, never
	timeout := int64(n.rule.Timeout())
	for i := range ch.members {
		m := &ch.members[i]
		if !m.led || n.silent(m.at) { // a goodbye never says it has a leader
			continue
		}
		contact = max(contact, m.at)
		until = max(until, sat(m.at, timeout))
	}
	return contact, until, contact != never
}

// sat is t+d, saturating at the clock's end.
func sat(t, d int64) int64 {
	if t > math.MaxInt64-d {
		return math.MaxInt64
	}
	return t + d
}

// deaf reports whether peer p, a rival Leader, has reported not hearing
// this node in every batch of a timeout heard without a break: it
// cannot hear this node claim office, so only this node can end the two
// terms. A rival heard again after a silence (a healed partition) is
// given a timeout to hear this node first, while the tiebreak works;
// one that has not named this node in its reports since (it reports
// nothing under OwnSilence, or over a transport that drops reports, or
// left this node out past udp.MaxReports) gives no evidence, and is left
// to the tiebreak. Two Leaders never both concede this way: each would have
// to hear the other's claims while the other reports not hearing it.
func (n *Node) deaf(p *peer) bool {
	return n.evidence == Corroborated && p.namedMe && n.silent(max(p.met, p.heardMe))
}
