package rolefsm

import (
	"fmt"

	"github.com/looplab/fsm"
)

// events is the transition matrix, and the only place it is declared:
// each signal is a looplab event with its allowed source roles and its
// one destination. Every Coordinator's looplab machine is built from
// it, and the lookup table behind Apply is derived from it at package
// init.
//
// ChannelClose lists Idle among its sources, so Idle → Idle is in the
// table (the idempotent close); looplab itself reports that case as a
// NoTransitionError, which the Coordinator never lets it see.
var events = fsm.Events{
	{Name: "CapabilitySelected", Src: []string{"Idle"}, Dst: "Replica"},
	{Name: "MissedHeartbeats", Src: []string{"Replica"}, Dst: "Candidate"},
	{Name: "ElectionWon", Src: []string{"Candidate"}, Dst: "Leader"},
	{Name: "ElectionLost", Src: []string{"Candidate"}, Dst: "Replica"},
	{Name: "GracefulRelinquish", Src: []string{"Leader"}, Dst: "Idle"},
	{Name: "DiskPressureWithdraw", Src: []string{"Replica"}, Dst: "Idle"},
	{Name: "LeaderDiskPressureWithdraw", Src: []string{"Leader"}, Dst: "Idle"},
	{Name: "CandidateDiskPressureWithdraw", Src: []string{"Candidate"}, Dst: "Idle"},
	{Name: "ChannelClose", Src: []string{"Idle", "Replica", "Candidate", "Leader"}, Dst: "Idle"},
	{Name: "PeerLeaderObserved", Src: []string{"Leader"}, Dst: "Replica"},
}

// noDest marks "this signal does not apply from this role" in the
// table. It is wider than a Role, so no Role, defined or not, equals it.
const noDest uint16 = 0x100

// table is the lookup form of events, plus every error value Apply can
// return for defined roles and signals, built once so that validation
// neither builds a looplab machine nor allocates.
type table struct {
	// dest[from][sig] is the role sig drives to from `from`, or noDest.
	// Index 0 (the zero Signal) is always noDest.
	dest [numRoles][numSignals + 1]uint16
	// dst[sig] is the one destination of sig; declared[sig] says
	// whether sig was declared at all.
	dst      [numSignals + 1]Role
	declared [numSignals + 1]bool
	// pair[from][to] reports whether some signal permits the pair.
	pair [numRoles][numRoles]bool

	// errs[from][to][sig] is what Apply returns for the triple: nil
	// when it is permitted, else a pointer into invalidPair or mismatch.
	errs        [numRoles][numRoles][numSignals + 1]error
	invalidPair [numRoles][numRoles]InvalidPairError
	mismatch    [numRoles][numRoles][numSignals + 1]SignalMismatchError

	// counted lists the triples whose commits are counted (every
	// permitted one but the idempotent close), in declaration order;
	// slot[from][sig] is a triple's index in it, -1 if not counted.
	counted [NumCounted]Transition
	slot    [numRoles][numSignals + 1]int8
}

// NumCounted is how many triples a coordinator counts commits of: every
// permitted triple but the idempotent close (Idle → Idle under
// ChannelClose), which never counts.
const NumCounted = 12

var matrix = mustBuildTable(events)

// buildTable derives the lookup table from a looplab registration. It
// checks what looplab's NewFSM does not: every name is a defined signal
// or role, every signal is declared once with one destination, and no
// (signal, source) pair is declared twice.
func buildTable(evs fsm.Events) (*table, error) {
	t := new(table)
	for from := range t.dest {
		for sig := range t.dest[from] {
			t.dest[from][sig] = noDest
			t.slot[from][sig] = -1
		}
	}
	n := 0
	for _, e := range evs {
		sig, err := ParseSignal(e.Name)
		if err != nil || e.Name != signalNames[sig] {
			return nil, fmt.Errorf("rolefsm: event %q is not a signal name", e.Name)
		}
		if t.declared[sig] {
			return nil, fmt.Errorf("rolefsm: signal %v declared twice", sig)
		}
		dst, err := parseExactRole(e.Dst)
		if err != nil {
			return nil, fmt.Errorf("rolefsm: signal %v: destination: %w", sig, err)
		}
		if len(e.Src) == 0 {
			return nil, fmt.Errorf("rolefsm: signal %v has no source role", sig)
		}
		t.dst[sig], t.declared[sig] = dst, true
		for _, s := range e.Src {
			from, err := parseExactRole(s)
			if err != nil {
				return nil, fmt.Errorf("rolefsm: signal %v: source: %w", sig, err)
			}
			if t.dest[from][sig] != noDest {
				return nil, fmt.Errorf("rolefsm: signal %v: source %v declared twice", sig, from)
			}
			t.dest[from][sig] = uint16(dst)
			t.pair[from][dst] = true
			if from == dst {
				continue // an idempotent transition changes nothing: never counted
			}
			if n == NumCounted {
				return nil, fmt.Errorf("rolefsm: more than NumCounted (%d) counted triples", NumCounted)
			}
			t.counted[n] = Transition{From: from, To: dst, Signal: sig}
			t.slot[from][sig] = int8(n)
			n++
		}
	}
	if n != NumCounted {
		return nil, fmt.Errorf("rolefsm: %d counted triples, NumCounted is %d", n, NumCounted)
	}
	for sig := Signal(1); sig <= numSignals; sig++ {
		if !t.declared[sig] {
			return nil, fmt.Errorf("rolefsm: signal %v is not declared", sig)
		}
	}
	for from := Role(0); from < numRoles; from++ {
		// Upstream's rule 3: every X → Idle pair is valid for some
		// signal (ChannelClose), whatever the declared sources say.
		t.pair[from][Idle] = true
		for to := Role(0); to < numRoles; to++ {
			t.invalidPair[from][to] = InvalidPairError{From: from, To: to}
			for sig := range t.mismatch[from][to] {
				t.mismatch[from][to][sig] = SignalMismatchError{From: from, To: to, Signal: Signal(sig)}
			}
		}
	}
	// The error rule, decided once per triple.
	for from := Role(0); from < numRoles; from++ {
		for to := Role(0); to < numRoles; to++ {
			for sig := range t.errs[from][to] {
				switch {
				case t.dest[from][sig] == uint16(to):
					t.errs[from][to][sig] = nil
				case !t.pair[from][to]:
					t.errs[from][to][sig] = &t.invalidPair[from][to]
				default:
					t.errs[from][to][sig] = &t.mismatch[from][to][sig]
				}
			}
		}
	}
	return t, nil
}

func mustBuildTable(evs fsm.Events) *table {
	t, err := buildTable(evs)
	if err != nil {
		// The declaration above is wrong: a programming error that
		// the tests catch, never a result of input.
		panic(err)
	}
	return t
}

// parseExactRole accepts only the exact role names used in events.
func parseExactRole(name string) (Role, error) {
	for i, n := range roleNames {
		if name == n {
			return Role(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not a role name", name)
}

// Counted returns the triples a coordinator counts commits of, in the
// order of Counts.Transitions: the permitted triples of Matrix but the
// idempotent close.
func Counted() [NumCounted]Transition { return matrix.counted }

// Matrix returns every permitted transition, in the order events.go
// declares them: signal by signal, and for each signal its source roles
// in declaration order. It has 13 entries, Idle → Idle under
// ChannelClose among them.
func Matrix() []Transition {
	var out []Transition
	for _, e := range events {
		sig, _ := ParseSignal(e.Name)
		for _, s := range e.Src {
			from, _ := parseExactRole(s)
			out = append(out, Transition{From: from, To: matrix.dst[sig], Signal: sig})
		}
	}
	return out
}
