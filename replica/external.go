package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/rolefsm/rolefsm"
)

// A node with Config.External leaves leadership to a backend that
// decides it elsewhere (rolefsmetcd campaigns in etcd). The backend
// reports each decision with one of the methods below, serialised with
// the node's ticks and steps (Driver.Do), and every role change still
// goes through the channel's coordinator under a signal of the matrix:
//
//	decision                                  transition
//	Stand: nobody holds office                Replica → Candidate (MissedHeartbeats)
//	Elected(self): the campaign won           Candidate → Leader (ElectionWon)
//	Elected(other or 0): it lost              Candidate → Replica (ElectionLost)
//	StepDown: the node must leave office      Leader → Replica (PeerLeaderObserved)
//	Follow: a Replica's leader changed        none
//
// A decision for a channel in another role than the one it applies to
// is stale: it returns an error matching ErrWrongRole and changes
// nothing. Relinquish, Close, Leave and disk pressure work as in
// heartbeat mode; the backend sees the channel leave office and resigns.

func (n *Node) decide(now time.Time, name string, want rolefsm.Role) (*Channel, error) {
	if !n.external {
		return nil, ErrNotExternal
	}
	ch, err := n.channel(name)
	if err != nil {
		return nil, err
	}
	if r := ch.coord.Role(); r != want {
		return nil, fmt.Errorf("%w: channel %q is %v, not %v", ErrWrongRole, name, r, want)
	}
	n.advance(now)
	return ch, nil
}

// checkLeader validates a leader named by the backend: the node
// itself, nobody (0), or a member of the channel's replica set.
func (n *Node) checkLeader(ch *Channel, id NodeID) error {
	if id == 0 || id == n.id || ch.member(id) != nil {
		return nil
	}
	return fmt.Errorf("%w: channel %q: node %d", ErrNotInReplicaSet, ch.name, id)
}

// Stand makes a Replica a Candidate (MissedHeartbeats): the backend
// found nobody in office and campaigns for the node.
func (n *Node) Stand(ctx context.Context, now time.Time, name string) error {
	ch, err := n.decide(now, name, rolefsm.Replica)
	if err != nil {
		return err
	}
	if err := n.transition(ctx, ch, rolefsm.Candidate, rolefsm.MissedHeartbeats); err != nil {
		return err
	}
	n.waitForLeader(ch)
	return nil
}

// Elected ends a Candidate's campaign: if winner is the node itself it
// takes office (ElectionWon) and the channel's lease; otherwise it
// becomes a Replica (ElectionLost) following winner, or nobody if
// winner is 0. A winner outside the channel's replica set is an error
// matching ErrNotInReplicaSet that changes nothing.
func (n *Node) Elected(ctx context.Context, now time.Time, name string, winner NodeID) error {
	ch, err := n.decide(now, name, rolefsm.Candidate)
	if err != nil {
		return err
	}
	if err := n.checkLeader(ch, winner); err != nil {
		return err
	}
	if winner == n.id {
		if err := n.transition(ctx, ch, rolefsm.Leader, rolefsm.ElectionWon); err != nil {
			return err
		}
		ch.lease = ch.coord.Lease()
		n.waitForLeader(ch) // it follows nobody while it leads
		return nil
	}
	if err := n.transition(ctx, ch, rolefsm.Replica, rolefsm.ElectionLost); err != nil {
		return err
	}
	n.followOrWait(ch, winner)
	return nil
}

// StepDown takes a Leader out of office (PeerLeaderObserved): another
// node holds office, or may soon, and the node must stop acting as
// Leader. The channel follows leader, or nobody if it is 0 or the node
// itself. A leader outside the replica set is an error matching
// ErrNotInReplicaSet that changes nothing.
func (n *Node) StepDown(ctx context.Context, now time.Time, name string, leader NodeID) error {
	ch, err := n.decide(now, name, rolefsm.Leader)
	if err != nil {
		return err
	}
	if err := n.checkLeader(ch, leader); err != nil {
		return err
	}
	if err := n.transition(ctx, ch, rolefsm.Replica, rolefsm.PeerLeaderObserved); err != nil {
		return err
	}
	n.followOrWait(ch, leader)
	return nil
}

// Follow makes a Replica follow leader (nobody if 0); following the
// leader it already follows changes nothing. It commits no transition.
// The node itself is not a leader a Replica can follow: that is an
// error matching ErrWrongRole (the backend must Stand and elect it).
func (n *Node) Follow(now time.Time, name string, leader NodeID) error {
	ch, err := n.decide(now, name, rolefsm.Replica)
	if err != nil {
		return err
	}
	if leader == n.id {
		return fmt.Errorf("%w: channel %q: a Replica cannot follow its own node", ErrWrongRole, name)
	}
	if err := n.checkLeader(ch, leader); err != nil {
		return err
	}
	if leader == 0 && !ch.following || ch.following && ch.leader == leader {
		return nil
	}
	n.followOrWait(ch, leader)
	return nil
}

func (n *Node) followOrWait(ch *Channel, leader NodeID) {
	n.tell() // the entry may no longer say it has a live leader
	if leader == 0 || leader == n.id {
		n.waitForLeader(ch)
		return
	}
	n.follow(ch, leader, 0, false)
	if m := ch.member(leader); m != nil && m.leads && m.stamp > n.peers[m.peer].base && !n.silent(m.at+n.restWindow()) {
		// Its latest entry here, from its current boot and no older
		// than a peer at rest may go unheard, claimed office:
		// heartbeats repeat only what changes, so that claim may be
		// all it says for a while.
		ch.leaderTail, ch.leaderClaimed = m.tail, true
		ch.claimAt, ch.contact = m.at, m.at
	}
}

// OnChange sets fn to be called whenever a channel of an External node
// changes role: opened, closed, relinquished, withdrawn under disk
// pressure, or moved by the backend's own decisions. It is the
// backend's cue to look at the channels TakeChanges lists, so that it
// need not poll. fn runs with the node locked (inside the Driver's Do,
// Tick or Step): it must not block, nor call into the node or the
// driver; a non-blocking send on a channel of capacity 1 is the way.
func (n *Node) OnChange(fn func()) { n.onChange = fn }

// TakeChanges appends to dst, in the order they changed, the names of
// the channels whose role changed since the last call (each once), and
// forgets them. A channel removed since is listed too: the backend
// finds it gone.
func (n *Node) TakeChanges(dst []string) []string {
	for _, name := range n.changed {
		if ch := n.chans[name]; ch != nil {
			ch.changed = false
		}
	}
	dst = append(dst, n.changed...)
	n.changed = n.changed[:0]
	return dst
}

func (n *Node) noteChange(ch *Channel) {
	if !ch.changed {
		ch.changed = true
		n.changed = append(n.changed, ch.name)
	}
	if n.onChange != nil {
		n.onChange()
	}
}
