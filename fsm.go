package rolefsm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Role is the part a node plays for one replicated channel.
//
// The zero value is Idle, so a Role field left unset never claims
// leadership.
type Role uint8

const (
	// Idle holds storage but no role: it neither heartbeats nor takes
	// part in elections. It is the initial role.
	Idle Role = iota
	// Replica follows the leader and heartbeats its own tail.
	Replica
	// Candidate is the transient role held while the election runs; a
	// Candidate neither appends nor serves.
	Candidate
	// Leader is the sole appender of the channel's log.
	Leader
)

// numRoles is the number of defined roles; every valid Role is below it.
const numRoles = 4

var roleNames = [numRoles]string{"Idle", "Replica", "Candidate", "Leader"}

// Signal is the cause of a role change. Some (from, to) pairs can be
// reached by more than one signal (Leader → Idle by a graceful
// relinquish, by disk pressure or by a channel close), and the audit
// trail and metrics care which.
//
// The zero value is no signal at all: it drives no transition, so an
// unset Signal field never promotes a node.
type Signal uint8

const (
	// CapabilitySelected means placement selected this node as a
	// replica. It drives Idle → Replica.
	CapabilitySelected Signal = iota + 1
	// MissedHeartbeats means the leader's heartbeats stopped for the
	// miss threshold. It drives Replica → Candidate and is the only
	// signal counted as election thrash.
	MissedHeartbeats
	// ElectionWon means the election picked this node. It drives
	// Candidate → Leader.
	ElectionWon
	// ElectionLost means the election picked a peer. It drives
	// Candidate → Replica.
	ElectionLost
	// GracefulRelinquish is an operator's request to step down (for
	// example a leader migration). It drives Leader → Idle.
	GracefulRelinquish
	// DiskPressureWithdraw means local disk pressure withdrew a
	// Replica. It drives Replica → Idle.
	DiskPressureWithdraw
	// LeaderDiskPressureWithdraw means local disk pressure withdrew a
	// Leader. It drives Leader → Idle.
	LeaderDiskPressureWithdraw
	// CandidateDiskPressureWithdraw means local disk pressure withdrew
	// a Candidate. It drives Candidate → Idle.
	CandidateDiskPressureWithdraw
	// ChannelClose means the channel was closed. It drives any role to
	// Idle, Idle itself included (an idempotent close).
	ChannelClose
	// PeerLeaderObserved means this Leader saw another peer claim
	// Leader and lost the tiebreak. It drives Leader → Replica, so a
	// healed partition converges on one leader.
	PeerLeaderObserved
)

// numSignals is the number of defined signals; valid signals are
// 1..numSignals.
const numSignals = 10

var signalNames = [numSignals + 1]string{
	"", // the zero Signal has no name
	"CapabilitySelected",
	"MissedHeartbeats",
	"ElectionWon",
	"ElectionLost",
	"GracefulRelinquish",
	"DiskPressureWithdraw",
	"LeaderDiskPressureWithdraw",
	"CandidateDiskPressureWithdraw",
	"ChannelClose",
	"PeerLeaderObserved",
}

// Roles returns every role, Idle first.
func Roles() []Role { return []Role{Idle, Replica, Candidate, Leader} }

// Signals returns every signal in declaration order.
func Signals() []Signal {
	s := make([]Signal, numSignals)
	for i := range s {
		s[i] = Signal(i + 1)
	}
	return s
}

// Valid reports whether r is one of the four defined roles.
func (r Role) Valid() bool { return r < numRoles }

// Valid reports whether s is one of the ten defined signals. The zero
// Signal is not valid.
func (s Signal) Valid() bool { return s >= 1 && s <= numSignals }

// String returns the role's name, or Role(n) for a value outside the set.
func (r Role) String() string {
	if r.Valid() {
		return roleNames[r]
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// String returns the signal's name, or Signal(n) for a value outside
// the set (the zero Signal prints as Signal(0)).
func (s Signal) String() string {
	if s.Valid() {
		return signalNames[s]
	}
	return "Signal(" + strconv.Itoa(int(s)) + ")"
}

// ParseRole returns the role with the given name. Case is ignored
// ("leader" and "LEADER" both give Leader); surrounding space is not
// trimmed. An unknown name gets an error that lists the valid ones.
func ParseRole(name string) (Role, error) {
	for i, n := range roleNames {
		if strings.EqualFold(name, n) {
			return Role(i), nil
		}
	}
	return 0, &ParseError{Kind: "role", Input: name, Valid: roleNames[:]}
}

// ParseSignal returns the signal with the given name. Case is ignored;
// surrounding space is not trimmed. An unknown name, the empty string
// included, gets an error that lists the valid ones.
func ParseSignal(name string) (Signal, error) {
	if name != "" {
		for i, n := range signalNames[1:] {
			if strings.EqualFold(name, n) {
				return Signal(i + 1), nil
			}
		}
	}
	return 0, &ParseError{Kind: "signal", Input: name, Valid: signalNames[1:]}
}

// MarshalText encodes the role as its name. A value outside the set is
// an error, so that nothing is written that cannot be read back.
func (r Role) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("rolefsm: cannot marshal %v: not a defined role", r)
	}
	return []byte(roleNames[r]), nil
}

// UnmarshalText decodes a role name as ParseRole does. On error the
// receiver is left unchanged.
func (r *Role) UnmarshalText(text []byte) error {
	v, err := ParseRole(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalText encodes the signal as its name. A value outside the set,
// the zero Signal included, is an error.
func (s Signal) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("rolefsm: cannot marshal %v: not a defined signal", s)
	}
	return []byte(signalNames[s]), nil
}

// UnmarshalText decodes a signal name as ParseSignal does. On error the
// receiver is left unchanged.
func (s *Signal) UnmarshalText(text []byte) error {
	v, err := ParseSignal(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseError is returned by ParseRole, ParseSignal and the
// UnmarshalText methods for a name that is not defined.
type ParseError struct {
	// Kind is "role" or "signal".
	Kind string
	// Input is the rejected text, as given.
	Input string
	// Valid lists the accepted names.
	Valid []string
}

// maxQuoted bounds how much of a rejected input an error message repeats.
const maxQuoted = 64

func (e *ParseError) Error() string {
	in := e.Input
	cut := ""
	if len(in) > maxQuoted {
		in, cut = in[:maxQuoted], fmt.Sprintf("... (%d bytes)", len(e.Input))
	}
	return fmt.Sprintf("rolefsm: unknown %s %q%s (valid: %s)", e.Kind, in, cut, strings.Join(e.Valid, ", "))
}

// Transition is one validated step: the role it leaves, the role it
// enters and the signal that drove it.
type Transition struct {
	From   Role
	To     Role
	Signal Signal
}

// String formats the transition as "From → To (Signal)".
func (t Transition) String() string {
	return t.From.String() + " → " + t.To.String() + " (" + t.Signal.String() + ")"
}

// Sentinel errors, for errors.Is. Every error Apply returns matches
// exactly one of the first two.
var (
	// ErrInvalidPair matches an *InvalidPairError: the (from, to) pair
	// is not reachable under any signal.
	ErrInvalidPair = errors.New("invalid replica state transition")
	// ErrSignalMismatch matches a *SignalMismatchError: the (from, to)
	// pair is reachable, but not under the given signal.
	ErrSignalMismatch = errors.New("transition not permitted under signal")
	// ErrUnknownSignal is returned by Fire for a signal outside the
	// defined set: such a signal has no destination to fire towards.
	ErrUnknownSignal = errors.New("rolefsm: unknown signal")
	// ErrNilContext is returned by Transition and Fire for a nil
	// context: the call changes nothing.
	ErrNilContext = errors.New("rolefsm: nil context")
)

// InvalidPairError reports a (from, to) pair that no signal permits,
// such as Idle → Leader. Errors returned by this package may be shared
// between calls: read their fields, do not modify them.
type InvalidPairError struct {
	From Role
	To   Role
}

func (e *InvalidPairError) Error() string {
	return "invalid replica state transition: " + e.From.String() + " → " + e.To.String()
}

// Is reports whether target is ErrInvalidPair.
func (e *InvalidPairError) Is(target error) bool { return target == ErrInvalidPair }

// SignalMismatchError reports a (from, to) pair that some signal
// permits, attempted under a signal that does not, such as
// Idle → Replica under ElectionWon. Errors returned by this package may
// be shared between calls: read their fields, do not modify them.
type SignalMismatchError struct {
	From   Role
	To     Role
	Signal Signal
}

func (e *SignalMismatchError) Error() string {
	return "transition " + e.From.String() + " → " + e.To.String() + " not permitted under signal " + e.Signal.String()
}

// Is reports whether target is ErrSignalMismatch.
func (e *SignalMismatchError) Is(target error) bool { return target == ErrSignalMismatch }

// Apply validates the triple (from, to, sig) against the transition
// matrix and returns it as a Transition (the zero Transition on error). It is a pure function with the
// upstream error rule:
//
//  1. ChannelClose to Idle succeeds from every role, Idle included.
//  2. Otherwise a triple declared in the matrix succeeds.
//  3. Otherwise, if some signal permits the (from, to) pair, the error
//     is a *SignalMismatchError. Every X → Idle pair counts as permitted
//     (by ChannelClose).
//  4. Otherwise the error is an *InvalidPairError.
//
// Roles and signals outside the defined sets never succeed: a pair with
// an unknown role is an invalid pair, and an unknown signal on a
// permitted pair is a signal mismatch. Apply does not allocate for
// defined roles and signals.
func Apply(from, to Role, sig Signal) (Transition, error) {
	// Small enough to inline: for defined roles and signals the answer,
	// success or a preallocated error, is one table load.
	if from < numRoles && to < numRoles {
		if sig <= numSignals {
			if err := matrix.errs[from][to][sig]; err != nil {
				return Transition{}, err
			}
			return Transition{From: from, To: to, Signal: sig}, nil
		}
		if matrix.pair[from][to] {
			return Transition{}, &SignalMismatchError{From: from, To: to, Signal: sig}
		}
	}
	return Transition{}, &InvalidPairError{From: from, To: to}
}

// Destination returns the one role that sig drives to, and false for a
// signal outside the defined set.
func Destination(sig Signal) (Role, bool) {
	if !sig.Valid() {
		return 0, false
	}
	return matrix.dst[sig], true
}
