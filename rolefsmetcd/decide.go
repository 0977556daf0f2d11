package rolefsmetcd

import (
	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// The election's decision, pure as the heartbeat election's rules are
// (replica/elect.go): one channel's role and what etcd's view and the
// session say go in; a decision for the node and the operations for
// etcd come out. No client, no clock, no Driver: every case is a row of
// testdata/decide.txt.

// election is what the elector knows of one channel when it decides.
type election struct {
	role rolefsm.Role
	// valid says the session may be acted on now (TTL − Margin after
	// the latest keep-alive's send has not passed).
	valid bool
	// mine says this session has a key in the channel's election; held
	// that it is the key of a term this session won (and left).
	mine, held bool
	// hasLeader says some key leads; leading that it is this
	// session's, and created its create revision.
	hasLeader, leading bool
	created            int64
	// other is the leader to follow when the lowest key is another
	// session's: its node, or 0 when the key names this node (a key
	// left by an earlier run) or a node outside the channel's replica
	// set.
	other replica.NodeID
	// campaigning says this session has put its campaign key, at
	// revision campaign (or has a key in the view, created at campaign:
	// one waiting in line); viewRev is the revision the view is
	// complete up to.
	campaigning       bool
	campaign, viewRev int64
	// token is the term's token the node holds, if hasToken.
	token    Token
	hasToken bool
}

// verb is what the decision does to the node.
type verb uint8

const (
	keep     verb = iota // nothing
	follow               // Follow(leader)
	stand                // Stand: Replica → Candidate
	elect                // Elected(leader): Candidate → Leader if leader is the node, else Replica
	stepDown             // StepDown(leader): Leader → Replica
)

var verbNames = [...]string{"keep", "follow", "stand", "elected", "step-down"}

// decision is what to do about one channel. campaign and resign are
// sent to etcd once the verb succeeded (keep and follow always do);
// withToken sets the term's token before the verb (an observer of
// ElectionWon reads it) and drops it if the verb fails; dropToken drops
// it before.
type decision struct {
	verb verb
	// leader is whom to follow, elect or step down to (0: nobody);
	// won elects the node itself.
	leader    replica.NodeID
	won       bool
	campaign  bool
	resign    bool
	withToken bool
	dropToken bool
}

// decide is the election's rule for one channel.
func decide(e election) decision {
	switch e.role {
	case rolefsm.Replica:
		switch {
		case e.held:
			// The key of a term it left (the watchdog stepped it down):
			// resign it, and wait in line with a new one, so that no two
			// terms share a token.
			return decision{verb: follow, leader: e.other, resign: true}
		case !e.hasLeader:
			if !e.valid {
				return decision{} // it cannot win without a session it can trust
			}
			return decision{verb: stand, campaign: true}
		case e.leading:
			// Its key, waiting in line behind the leader's, is the first
			// one now: it stands, and is elected on the key it has, in
			// the same pass, with no round trip to etcd.
			if !e.valid {
				// Not on a session it cannot trust; and its key, first
				// in line, would hold up the nodes behind it until the
				// session lapsed at the server: resign it (if etcd is
				// reachable at all).
				return decision{verb: follow, resign: true}
			}
			return decision{verb: stand}
		default:
			// It follows the leader, and waits in line with a key of its
			// own (one put while the session is valid), so that it takes
			// over as soon as the keys before it go.
			return decision{verb: follow, leader: e.other, campaign: e.valid && !e.mine}
		}
	case rolefsm.Candidate:
		switch {
		case e.held:
			// Stood on its own (disk pressure relieved, a rejoin) with
			// the key of a term it left: resign it, then campaign anew.
			return decision{resign: true}
		case !e.valid:
			// It cannot win without a session it can trust.
			return decision{verb: elect, leader: e.other, resign: e.mine}
		case !e.campaigning:
			return decision{campaign: true}
		case e.viewRev < e.campaign:
			return decision{} // the view has not caught up with the campaign
		case e.hasLeader && e.leading:
			return decision{verb: elect, won: true, withToken: true}
		default:
			// Lost: it follows the leader, its key waiting in line.
			return decision{verb: elect, leader: e.other}
		}
	case rolefsm.Leader:
		if !e.valid || (e.hasToken && e.hasLeader && e.leading && e.created == e.token.Revision) {
			// In office; or the session went stale, which is the
			// watchdog's to act on.
			return decision{}
		}
		return decision{verb: stepDown, leader: e.other, resign: e.mine, dropToken: true}
	case rolefsm.Idle:
		return decision{resign: e.mine}
	}
	return decision{}
}
