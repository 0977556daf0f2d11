package rolefsm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/looplab/fsm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// expected is the whole matrix, written out by hand from upstream's replica state machine:
// one row per (from, to) pair, one column per signal in declaration
// order (CapabilitySelected, MissedHeartbeats, ElectionWon,
// ElectionLost, GracefulRelinquish, DiskPressureWithdraw,
// LeaderDiskPressureWithdraw, CandidateDiskPressureWithdraw,
// ChannelClose, PeerLeaderObserved).
//
//	'.' the triple succeeds
//	'M' *SignalMismatchError (the pair is reachable under another signal)
//	'I' *InvalidPairError (no signal reaches the pair)
var expected = []struct {
	from, to Role
	outcome  string
}{
	{Idle, Idle, "MMMMMMMM.M"},
	{Idle, Replica, ".MMMMMMMMM"},
	{Idle, Candidate, "IIIIIIIIII"},
	{Idle, Leader, "IIIIIIIIII"},
	{Replica, Idle, "MMMMM.MM.M"},
	{Replica, Replica, "IIIIIIIIII"},
	{Replica, Candidate, "M.MMMMMMMM"},
	{Replica, Leader, "IIIIIIIIII"},
	{Candidate, Idle, "MMMMMMM..M"},
	{Candidate, Replica, "MMM.MMMMMM"},
	{Candidate, Candidate, "IIIIIIIIII"},
	{Candidate, Leader, "MM.MMMMMMM"},
	{Leader, Idle, "MMMM.M.M.M"},
	{Leader, Replica, "MMMMMMMMM."},
	{Leader, Candidate, "IIIIIIIIII"},
	{Leader, Leader, "IIIIIIIIII"},
}

var roleText = map[Role]string{Idle: "Idle", Replica: "Replica", Candidate: "Candidate", Leader: "Leader"}

var signalText = []string{"CapabilitySelected", "MissedHeartbeats", "ElectionWon", "ElectionLost",
	"GracefulRelinquish", "DiskPressureWithdraw", "LeaderDiskPressureWithdraw",
	"CandidateDiskPressureWithdraw", "ChannelClose", "PeerLeaderObserved"}

// expectApply checks one Apply result against an outcome code.
func expectApply(t *testing.T, from, to Role, sig Signal, code byte) {
	t.Helper()
	name := fmt.Sprintf("%v→%v/%v", from, to, sig)
	got, err := Apply(from, to, sig)
	switch code {
	case '.':
		require.NoError(t, err, name)
		assert.Equal(t, Transition{From: from, To: to, Signal: sig}, got, name)
	case 'M':
		var mm *SignalMismatchError
		require.ErrorAs(t, err, &mm, name)
		assert.Equal(t, SignalMismatchError{From: from, To: to, Signal: sig}, *mm, name)
		assert.ErrorIs(t, err, ErrSignalMismatch, name)
		assert.NotErrorIs(t, err, ErrInvalidPair, name)
		assert.Equal(t, "transition "+roleText[from]+" → "+roleText[to]+" not permitted under signal "+sigText(sig), err.Error(), name)
		assert.Equal(t, Transition{}, got, name)
	case 'I':
		var ip *InvalidPairError
		require.ErrorAs(t, err, &ip, name)
		assert.Equal(t, InvalidPairError{From: from, To: to}, *ip, name)
		assert.ErrorIs(t, err, ErrInvalidPair, name)
		assert.NotErrorIs(t, err, ErrSignalMismatch, name)
		assert.Equal(t, "invalid replica state transition: "+roleText[from]+" → "+roleText[to], err.Error(), name)
		assert.Equal(t, Transition{}, got, name)
	default:
		t.Fatalf("bad outcome code %q", code)
	}
}

func sigText(s Signal) string {
	if s >= 1 && int(s) <= len(signalText) {
		return signalText[s-1]
	}
	return fmt.Sprintf("Signal(%d)", s)
}

func TestApplyAll160Triples(t *testing.T) {
	require.Len(t, expected, 16)
	ok, pairs := 0, 0
	for _, row := range expected {
		require.Len(t, row.outcome, 10)
		reachable := false
		for i := 0; i < 10; i++ {
			expectApply(t, row.from, row.to, Signal(i+1), row.outcome[i])
			if row.outcome[i] == '.' {
				ok++
				reachable = true
			}
		}
		if reachable {
			pairs++
		}
	}
	assert.Equal(t, 13, ok, "successful triples")
	assert.Equal(t, 9, pairs, "reachable pairs")
}

func TestApplyOutsideTheSets(t *testing.T) {
	// The zero Signal and out-of-range signals: never succeed; on a
	// reachable pair they are a mismatch, on any other an invalid pair.
	for _, row := range expected {
		code := byte('I')
		if strings.ContainsAny(row.outcome, ".M") {
			code = 'M'
		}
		for _, sig := range []Signal{0, 11, 200, 255} {
			expectApply(t, row.from, row.to, sig, code)
		}
	}
	// An unknown role on either side is an invalid pair, whatever the
	// signal; even ChannelClose to Idle does not rescue it.
	for _, bad := range []Role{4, 7, 255} {
		for sig := Signal(0); sig <= 12; sig++ {
			for _, r := range []Role{Idle, Replica, Candidate, Leader, bad} {
				for _, pair := range [][2]Role{{bad, r}, {r, bad}} {
					_, err := Apply(pair[0], pair[1], sig)
					var ip *InvalidPairError
					require.ErrorAs(t, err, &ip)
					assert.Equal(t, InvalidPairError{From: pair[0], To: pair[1]}, *ip)
				}
			}
		}
	}
	_, err := Apply(Role(7), Idle, ChannelClose)
	assert.EqualError(t, err, "invalid replica state transition: Role(7) → Idle")
	_, err = Apply(Idle, Replica, Signal(0))
	assert.EqualError(t, err, "transition Idle → Replica not permitted under signal Signal(0)")
}

func TestApplyUpstreamMessages(t *testing.T) {
	_, err := Apply(Idle, Leader, ElectionWon)
	assert.EqualError(t, err, "invalid replica state transition: Idle → Leader")
	_, err = Apply(Idle, Replica, ElectionWon)
	assert.EqualError(t, err, "transition Idle → Replica not permitted under signal ElectionWon")
}

// TestTableAgreesWithLooplab drives a real looplab machine, built from
// the registration in events.go, through every one of the 160 triples
// and checks that Apply's table, and the mapping of looplab's errors,
// give the same answer.
func TestTableAgreesWithLooplab(t *testing.T) {
	for from := Role(0); from < 4; from++ {
		for to := Role(0); to < 4; to++ {
			for sig := Signal(1); sig <= 10; sig++ {
				m := fsm.NewFSM(from.String(), events, nil)
				lerr := m.Event(context.Background(), sig.String())
				tr := Transition{From: from, To: to, Signal: sig}
				looplabOK := lerr == nil && m.Current() == to.String()
				if lerr != nil {
					var nt fsm.NoTransitionError
					looplabOK = errors.As(lerr, &nt) && from == to
				}
				_, aerr := Apply(from, to, sig)
				assert.Equal(t, looplabOK, aerr == nil, "%v", tr)
				if lerr != nil {
					// The wrapper's mapping of looplab's own refusal
					// gives Apply's error (or success for Idle → Idle).
					mapped := fromLooplab(tr, lerr)
					if looplabOK {
						assert.NoError(t, mapped, "%v", tr)
					} else {
						assert.Equal(t, aerr, mapped, "%v", tr)
					}
				}
			}
		}
	}
}

func TestFromLooplab(t *testing.T) {
	idle := Transition{From: Idle, To: Idle, Signal: ChannelClose}
	assert.NoError(t, fromLooplab(idle, nil))
	assert.NoError(t, fromLooplab(idle, fsm.NoTransitionError{}))
	bad := Transition{From: Idle, To: Leader, Signal: ElectionWon}
	assert.ErrorIs(t, fromLooplab(bad, fsm.InvalidEventError{Event: "ElectionWon", State: "Idle"}), ErrInvalidPair)
	mm := Transition{From: Idle, To: Replica, Signal: ElectionWon}
	assert.ErrorIs(t, fromLooplab(mm, fsm.InvalidEventError{Event: "ElectionWon", State: "Idle"}), ErrSignalMismatch)
	assert.ErrorIs(t, fromLooplab(mm, fsm.UnknownEventError{Event: "ElectionWon"}), ErrSignalMismatch)
	// A refusal of a triple the matrix permits is a disagreement, not
	// a success.
	good := Transition{From: Idle, To: Replica, Signal: CapabilitySelected}
	err := fromLooplab(good, fsm.InvalidEventError{Event: "CapabilitySelected", State: "Idle"})
	assert.ErrorContains(t, err, "internal error")
	var ie fsm.InvalidEventError
	assert.ErrorAs(t, err, &ie)
	// A stuck machine is reported, wrapped.
	err = fromLooplab(good, fsm.InTransitionError{Event: "CapabilitySelected"})
	var it fsm.InTransitionError
	assert.ErrorAs(t, err, &it)
	assert.NotErrorIs(t, err, ErrInvalidPair)
	// NoTransitionError on a real move is not a success either.
	assert.Error(t, fromLooplab(good, fsm.NoTransitionError{}))
}

func TestBuildTableRejectsBadRegistrations(t *testing.T) {
	clone := func() fsm.Events {
		out := make(fsm.Events, len(events))
		for i, e := range events {
			out[i] = fsm.EventDesc{Name: e.Name, Src: append([]string(nil), e.Src...), Dst: e.Dst}
		}
		return out
	}
	_, err := buildTable(clone())
	require.NoError(t, err)

	cases := map[string]func(fsm.Events) fsm.Events{
		"not a signal":       func(e fsm.Events) fsm.Events { e[0].Name = "Promote"; return e },
		"wrong case":         func(e fsm.Events) fsm.Events { e[0].Name = "capabilityselected"; return e },
		"declared twice":     func(e fsm.Events) fsm.Events { return append(e, e[0]) },
		"missing signal":     func(e fsm.Events) fsm.Events { return e[1:] },
		"unknown dst":        func(e fsm.Events) fsm.Events { e[0].Dst = "Follower"; return e },
		"unknown src":        func(e fsm.Events) fsm.Events { e[0].Src = []string{"idle"}; return e },
		"no src":             func(e fsm.Events) fsm.Events { e[0].Src = nil; return e },
		"src declared twice": func(e fsm.Events) fsm.Events { e[8].Src = append(e[8].Src, "Leader"); return e },
		"a 13th counted triple": func(e fsm.Events) fsm.Events {
			e[event(e, ElectionWon)].Src = append(e[event(e, ElectionWon)].Src, "Replica")
			return e
		},
		"an 11th": func(e fsm.Events) fsm.Events {
			i := event(e, ChannelClose)
			e[i].Src = slices.DeleteFunc(e[i].Src, func(s string) bool { return s == "Leader" })
			return e
		},
	}
	for name, mutate := range cases {
		_, err := buildTable(mutate(clone()))
		assert.Error(t, err, name)
	}
	assert.Panics(t, func() { mustBuildTable(cases["no src"](clone())) })
}

// event is the index of sig's declaration in e.
func event(e fsm.Events, sig Signal) int {
	return slices.IndexFunc(e, func(d fsm.EventDesc) bool { return d.Name == sig.String() })
}

// The upstream tests, ported. Upstream's own versions cover 6 or 7 of
// the ten signals; these cover all ten.

func TestUpstreamValidTransitions(t *testing.T) {
	for _, tr := range []Transition{
		{Idle, Replica, CapabilitySelected},
		{Replica, Candidate, MissedHeartbeats},
		{Candidate, Leader, ElectionWon},
		{Candidate, Replica, ElectionLost},
		{Leader, Idle, GracefulRelinquish},
		{Replica, Idle, DiskPressureWithdraw},
		{Leader, Idle, LeaderDiskPressureWithdraw},
		{Candidate, Idle, CandidateDiskPressureWithdraw},
		{Leader, Replica, PeerLeaderObserved},
	} {
		got, err := Apply(tr.From, tr.To, tr.Signal)
		require.NoError(t, err, "%v", tr)
		assert.Equal(t, tr, got)
	}
}

func TestUpstreamChannelCloseFromAnyRole(t *testing.T) {
	for _, from := range Roles() {
		got, err := Apply(from, Idle, ChannelClose)
		require.NoError(t, err, "ChannelClose must drive %v → Idle", from)
		assert.Equal(t, Transition{From: from, To: Idle, Signal: ChannelClose}, got)
	}
}

func TestUpstreamRejectsInvalidPairs(t *testing.T) {
	for _, tr := range []Transition{
		{Idle, Leader, ElectionWon},
		{Replica, Leader, ElectionWon},           // no hop past Candidate
		{Leader, Candidate, MissedHeartbeats},    // a leader never re-runs the election
		{Replica, Leader, ChannelClose},          // ChannelClose drives to Idle only
		{Idle, Candidate, MissedHeartbeats},      // an Idle node takes no part in elections
		{Candidate, Candidate, ElectionLost},     // self-transition
		{Leader, Leader, PeerLeaderObserved},     // self-transition
		{Replica, Replica, DiskPressureWithdraw}, // self-transition
	} {
		_, err := Apply(tr.From, tr.To, tr.Signal)
		var ip *InvalidPairError
		require.ErrorAs(t, err, &ip, "%v", tr)
		assert.Equal(t, InvalidPairError{From: tr.From, To: tr.To}, *ip)
	}
}

func TestUpstreamSignalMismatch(t *testing.T) {
	_, err := Apply(Idle, Replica, ElectionWon)
	var mm *SignalMismatchError
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, SignalMismatchError{From: Idle, To: Replica, Signal: ElectionWon}, *mm)
	// The late signals on the wrong role: disk pressure picks its
	// signal from the role it withdraws.
	for _, tr := range []Transition{
		{Leader, Idle, DiskPressureWithdraw},
		{Leader, Idle, CandidateDiskPressureWithdraw},
		{Replica, Idle, LeaderDiskPressureWithdraw},
		{Candidate, Idle, GracefulRelinquish},
		{Candidate, Replica, PeerLeaderObserved},
		{Leader, Replica, ElectionLost},
	} {
		_, err := Apply(tr.From, tr.To, tr.Signal)
		assert.ErrorIs(t, err, ErrSignalMismatch, "%v", tr)
	}
}

func TestUpstreamSelfTransitionsRejected(t *testing.T) {
	// Over all ten signals (upstream loops over six): the only
	// self-transition that succeeds is Idle → Idle under ChannelClose.
	for _, r := range Roles() {
		for _, sig := range Signals() {
			_, err := Apply(r, r, sig)
			if r == Idle && sig == ChannelClose {
				assert.NoError(t, err)
				continue
			}
			assert.Error(t, err, "%v → %v via %v", r, r, sig)
		}
	}
}

func TestUpstreamMatrixShape(t *testing.T) {
	// Upstream's matrix_exhaustive_negative_coverage, over all ten
	// signals: 9 reachable pairs; at most one signal per pair, except
	// X → Idle, where Leader → Idle has three.
	hits := map[[2]Role]int{}
	for _, from := range Roles() {
		for _, to := range Roles() {
			for _, sig := range Signals() {
				if _, err := Apply(from, to, sig); err == nil {
					hits[[2]Role{from, to}]++
				}
			}
		}
	}
	assert.Len(t, hits, 9)
	assert.Equal(t, map[[2]Role]int{
		{Idle, Idle}: 1, {Idle, Replica}: 1,
		{Replica, Idle}: 2, {Replica, Candidate}: 1,
		{Candidate, Idle}: 2, {Candidate, Replica}: 1, {Candidate, Leader}: 1,
		{Leader, Idle}: 3, {Leader, Replica}: 1,
	}, hits)
}
