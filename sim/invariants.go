package sim

// The invariants checked after every step, and the run's fingerprint.

import (
	"fmt"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// The invariants, by the names violations carry.
const (
	// InvValid: every committed transition is in the matrix and starts
	// from the role the node was in (the observers' records chain).
	InvValid = "valid-transition"
	// InvNoRejection: no Transition the simulator asks for is rejected;
	// a rejection means the simulator picked the wrong signal.
	InvNoRejection = "no-rejected-transition"
	// InvSingleLeader: from Result.Settle on, each connected component
	// holding a live non-Idle node has exactly one Leader.
	InvSingleLeader = "single-leader"
	// InvCandidate: no node stays Candidate past one election step.
	InvCandidate = "no-stuck-candidate"
	// InvReplica: no live Replica goes longer than the heartbeat timeout
	// plus one step without hearing the leader it follows (two timeouts
	// within ten timeouts of a batch of the leader's to it lost by the
	// simulator, or while no batch from the replica set has reached it
	// within the timeout), unless the members vouch: by their reports,
	// or, once its leader left office, by their word that they have a
	// leader, which the simulator bounds by the last step a node led.
	InvReplica = "no-stuck-replica"
	// InvFencing: no append lands after its leader lost leadership
	// locally (Result.StaleAppends is 0).
	InvFencing = "fenced-appends"
	// InvReproducible: running the same Config again gives the same
	// trace (checked by Check and Sweep).
	InvReproducible = "reproducible"
)

func differs(a, b *Result) string {
	switch {
	case a.Digest != b.Digest:
		return fmt.Sprintf("trace digest %016x then %016x", a.Digest, b.Digest)
	case a.Appends != b.Appends || a.DualLeaderSteps != b.DualLeaderSteps || a.LeaderlessSteps != b.LeaderlessSteps:
		return "counters differ"
	case string(a.Leaders) != string(b.Leaders):
		return "leader counts differ"
	}
	return ""
}

// lossyLink reports whether a batch from node from to node to was lost
// (to loss or a cut) recently enough that the receiver may still count
// the link as lossy: it sees the gap when the next batch arrives
// (usually an interval and the longest delay later, but as late as the
// sender's next batch comes) and remembers it for ten timeouts
// (replica.Channel.LossyUntil).
func (r *run) lossyLink(from, to int) bool {
	k := from*r.n + to
	if at := r.lost[k]; at >= 0 && r.step-at <= 10*r.timeoutSteps+r.hbSteps+r.maxDelay+1 {
		return true
	}
	// A sender that went quiet after the loss (it crashed, stood, or
	// had nothing to send) shows the gap only with its next batch,
	// which may come much later: ten timeouts from then.
	at := r.gap[k]
	return at >= 0 && r.step-at <= 10*r.timeoutSteps+1
}

// unwitnessed reports whether node to, following leader l, has members
// besides l and itself and no batch from any of them, nor from l, has
// reached it within the timeout (under peers evidence;
// under own, nobody waits for a witness). A batch that came exactly a
// timeout ago counts as none, so the check never asks a node to stand
// before the replica's own rule would.
func (r *run) unwitnessed(l, to int) bool {
	if r.cfg.Evidence == replica.OwnSilence || (r.cfg.Evidence == replica.DefaultEvidence && r.cfg.Policy == policy.Upstream) {
		return false
	}
	others := false
	for o := 0; o < r.n; o++ {
		if o == to {
			continue
		}
		if at := r.got[o*r.n+to]; at >= 0 && r.step-at < r.timeoutSteps {
			return false
		}
		others = others || o != l
	}
	return others
}

// checkStep checks the per-step invariants and counts leaders, in all
// and in each connected component of the live nodes.
func (r *run) checkStep() {
	r.components()
	for i := range r.leadersIn {
		r.leadersIn[i], r.activeIn[i] = 0, false
	}
	for i := range r.nodes {
		if n := &r.nodes[i]; n.alive && n.c.Role() == rolefsm.Leader {
			r.ledAt = r.step
		}
	}
	live := 0
	for i := range r.nodes {
		n := &r.nodes[i]
		if !n.alive {
			continue
		}
		switch n.c.Role() {
		case rolefsm.Leader:
			live++
			r.leadersIn[r.comp[i]]++
			r.activeIn[r.comp[i]] = true
		case rolefsm.Candidate:
			r.activeIn[r.comp[i]] = true
			if n.candidateAt < r.step {
				r.violate(InvCandidate, n.num, "Candidate since step %d", n.candidateAt)
			}
		case rolefsm.Replica:
			r.activeIn[r.comp[i]] = true
			contact := max(int(n.ch.Contact().Sub(r.epoch)/r.cfg.Step), n.reported)
			due := contact + r.timeoutSteps
			st := n.ch.Status()
			if l := int(st.Leader) - 1; l >= 0 && l < r.n && l != i && (r.lossyLink(l, i) || (st.LeaderClaimed && r.unwitnessed(l, i))) {
				// The simulator lost a batch of the leader to this node
				// lately, or nobody has reached it within the timeout:
				// its silence may be held to two timeouts.
				due += r.timeoutSteps
			}
			if v, ok := n.ch.VouchedUntil(); ok {
				// The members' reports vouch for the leader until then:
				// a Replica cut off alone waits.
				until := int(v.Sub(r.epoch) / r.cfg.Step)
				if st.Leader == 0 {
					// Its leader left office, and a member says it has
					// one: that holds only while some node led lately.
					// A member's word that it has a leader lasts its
					// timeout after the last claim it heard, and vouches
					// for a timeout after it arrives.
					until = min(until, r.ledAt+2*r.timeoutSteps+2*r.maxDelay+1)
				}
				due = max(due, until)
			}
			if r.step > due+1 {
				r.violate(InvReplica, n.num, "no word from a leader since step %d, nor a report vouching for it since step %d", contact, due-r.timeoutSteps)
				n.reported = r.step // report it once per timeout
			}
		}
	}
	r.res.Leaders[r.step] = uint8(live)

	dual, leaderless := false, false
	for c := range r.leadersIn {
		if r.leadersIn[c] > 1 {
			dual = true
		} else if r.activeIn[c] && r.leadersIn[c] == 0 {
			leaderless = true
		}
	}
	if dual {
		r.res.DualLeaderSteps++
	}
	if leaderless {
		r.res.LeaderlessSteps++
	}
	switch {
	case dual || leaderless:
		r.res.Converged = -1
		if r.step >= r.res.Settle {
			what := "a component with no Leader"
			if dual {
				what = "a component with more than one Leader"
			}
			r.violate(InvSingleLeader, 0, "%s, %s after faults stopped", what, fmtTime(r.res.TimeOf(r.step-r.res.Calm)))
		}
	case r.res.Converged < 0 && r.step >= r.res.Calm:
		r.res.Converged = r.step
	}
}

// components labels each live node with the lowest index of its
// connected component (nodes that hear each other both ways). With no
// partition and no cut link, every live node is in one.
func (r *run) components() {
	for i := range r.comp {
		r.comp[i] = i
	}
	if !r.parted && r.linksDown == 0 {
		first := -1
		for i := range r.nodes {
			if r.nodes[i].alive {
				if first < 0 {
					first = i
				}
				r.comp[i] = first
			}
		}
		return
	}
	// A breadth-first search from each unlabelled live node.
	queue := r.queue[:0]
	for s := range r.nodes {
		if !r.nodes[s].alive || r.seen(s) {
			continue
		}
		queue = append(queue[:0], s)
		r.mark[s] = r.epochMark
		for head := 0; head < len(queue); head++ {
			i := queue[head]
			r.comp[i] = s
			for j := range r.nodes {
				if r.mark[j] != r.epochMark && r.nodes[j].alive && r.connected(i, j) && r.connected(j, i) {
					r.mark[j] = r.epochMark
					queue = append(queue, j)
				}
			}
		}
	}
	r.queue = queue
	r.epochMark++
}

func (r *run) seen(i int) bool { return r.mark[i] == r.epochMark }

func (r *run) finish() {
	for i := range r.nodes {
		n := &r.nodes[i]
		st := NodeState{Alive: n.alive, Role: n.c.Role(), Tail: n.tail, Stats: n.c.Stats()}
		if st.Role == rolefsm.Replica {
			st.Follows, _, _ = n.ch.Follows()
		}
		r.res.Final = append(r.res.Final, st)
	}
	r.mix(uint64(r.res.Appends), uint64(r.res.Fenced), uint64(r.res.DualLeaderSteps), uint64(r.res.LeaderlessSteps))
}

func (r *run) violate(inv string, node int, format string, args ...any) {
	r.res.add(Violation{Invariant: inv, Step: r.step, At: r.res.TimeOf(r.step), Node: policy.NodeID(node), Detail: fmt.Sprintf(format, args...)})
}

func (r *run) mix(words ...uint64) {
	h := r.res.Digest
	for _, w := range words {
		for i := 0; i < 8; i++ {
			h ^= w & 0xff
			h *= fnvPrime
			w >>= 8
		}
	}
	r.res.Digest = h
}
