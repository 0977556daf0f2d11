package replica

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rolefsm/rolefsm"
)

// The errors a Node returns, each matched with errors.Is.
var (
	// ErrBadConfig is returned by NewNode for a configuration it cannot
	// run.
	ErrBadConfig = errors.New("replica: bad configuration")
	// ErrBadReplicaSet is returned by Open for a replica set that is
	// empty, lacks the node itself, lists a node twice or lists node 0.
	ErrBadReplicaSet = errors.New("replica: bad replica set")
	// ErrDuplicateChannel is returned by Open for a channel the node
	// already holds.
	ErrDuplicateChannel = errors.New("replica: channel already open")
	// ErrUnknownChannel is returned for a channel the node does not
	// hold, by the channel methods and, per entry, by Step.
	ErrUnknownChannel = errors.New("replica: unknown channel")
	// ErrFromSelf is returned by Step for a batch that claims to come
	// from the node itself.
	ErrFromSelf = errors.New("replica: batch from self")
	// ErrUnknownPeer is returned by Step and ObserveRTT for a node that
	// is in no replica set of this node.
	ErrUnknownPeer = errors.New("replica: unknown peer")
	// ErrNotInReplicaSet is returned by Step, per entry, when the
	// sender is not in the channel's replica set.
	ErrNotInReplicaSet = errors.New("replica: sender not in the channel's replica set")
	// ErrDuplicateEntry is returned by Step, per entry, for a channel
	// listed twice in one heartbeat (the later entries are dropped).
	ErrDuplicateEntry = errors.New("replica: channel twice in one heartbeat")
	// ErrBadRole is returned by Step, per entry, for a role other than
	// Leader, Replica or (a goodbye) Idle.
	ErrBadRole = errors.New("replica: heartbeat with a role that sends none")
	// ErrTailBackwards is returned by SetTail for a tail below the
	// channel's current one.
	ErrTailBackwards = errors.New("replica: tail moved backwards")
	// ErrNotLeader is returned by Relinquish when the node does not
	// lead the channel.
	ErrNotLeader = errors.New("replica: not the leader")
	// ErrStaleBatch is returned by Step for a batch older than a
	// heartbeat already received from the same sender (a late part of
	// a heartbeat, reordered on the way): it changes nothing.
	ErrStaleBatch = errors.New("replica: batch older than the sender's latest heartbeat")
	// ErrBadReport is returned by Step for a batch whose Heard lists a
	// negative age or node 0: it changes nothing.
	ErrBadReport = errors.New("replica: bad report of what the sender heard")
	// ErrNegativeRTT is returned by ObserveRTT for an RTT below zero.
	ErrNegativeRTT = errors.New("replica: negative RTT")
	// ErrNotExternal is returned by Stand, Elected, StepDown and
	// Follow on a node that runs its own heartbeat elections.
	ErrNotExternal = errors.New("replica: elections are the node's own (Config.External is off)")
	// ErrWrongRole is returned by Stand, Elected, StepDown and Follow
	// when the channel is not in the role the decision applies to: the
	// decision is stale, and nothing changes.
	ErrWrongRole = errors.New("replica: channel not in the role the decision applies to")
	// ErrRunning is returned by Driver.Run when the driver is already
	// running.
	ErrRunning = errors.New("replica: driver already running")
	// ErrTransportClosed is returned by a closed transport's Send and
	// Close, and by Driver.Run when its transport closes under it.
	ErrTransportClosed = errors.New("replica: transport closed")
)

// badRoleError is ErrBadRole with the role: a one-byte value, so that
// refusing an entry allocates nothing (a datagram of entries with bad
// roles costs no formatted error each; Error formats when asked).
type badRoleError rolefsm.Role

func (r badRoleError) Error() string { return ErrBadRole.Error() + ": " + rolefsm.Role(r).String() }

// Unwrap returns ErrBadRole.
func (r badRoleError) Unwrap() error { return ErrBadRole }

// EntryError is one entry of a batch that Step dropped.
type EntryError struct {
	Channel string
	Err     error
}

func (e EntryError) Error() string { return fmt.Sprintf("channel %q: %v", e.Channel, e.Err) }

// Unwrap returns the reason, one of Step's sentinel errors.
func (e EntryError) Unwrap() error { return e.Err }

// StepError lists the entries of a batch that Step dropped; the other
// entries were applied.
type StepError struct {
	From    NodeID
	Dropped []EntryError
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replica: %d of the entries from node %d dropped: ", len(e.Dropped), e.From)
	for i, d := range e.Dropped {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 3 {
			fmt.Fprintf(&b, "and %d more", len(e.Dropped)-3)
			break
		}
		b.WriteString(d.Error())
	}
	return b.String()
}

// Unwrap returns each dropped entry's error, so errors.Is finds every
// reason.
func (e *StepError) Unwrap() []error {
	errs := make([]error, len(e.Dropped))
	for i := range e.Dropped {
		errs[i] = e.Dropped[i]
	}
	return errs
}
