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
	// last, late by at most the links' jitter. And a Leader that hears
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
			p.saw = append(p.saw, never)
		}
		p.saw[k] = max(p.saw[k], at)
	}
}

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
// member of its replica set reports, and whether the rule lets reports
// count: the leader has claimed office and not since left it (a leader
// that stepped down is heard, but leads nothing), and only members whose
// latest entry for the channel says they have a live leader report.
func (n *Node) vouched(ch *Channel) (int64, bool) {
	if n.evidence != Corroborated || !ch.following || !ch.leaderClaimed || ch.leaderLeft || ch.leaderGone {
		return never, false
	}
	l := n.peer(ch.leader)
	if l == nil {
		return never, false
	}
	best := int64(never)
	for i := range ch.members {
		m := &ch.members[i]
		// Only a member that has a live leader here, by its own latest
		// entry (fresh, no goodbye), vouches: one that stood or elected
		// another may hear the old leader on another channel.
		if m.id == ch.leader || !m.led || m.gone || n.silent(m.at) {
			continue
		}
		if p := &n.peers[m.peer]; int(l.index) < len(p.saw) {
			best = max(best, p.saw[l.index])
		}
	}
	return best, best != never
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
