package rolefsm

import (
	"context"
	"errors"
	"testing"
)

// referenceApply is upstream's apply, transcribed from
// replication_state.rs independently of the table in events.go. It
// returns '.' for success, 'M' for a signal mismatch and 'I' for an
// invalid pair.
func referenceApply(from, to Role, sig Signal) byte {
	if from > Leader || to > Leader {
		return 'I' // an unknown role makes a pair outside the matrix
	}
	if sig == ChannelClose && to == Idle {
		return '.'
	}
	switch [3]int{int(from), int(to), int(sig)} {
	case [3]int{int(Idle), int(Replica), int(CapabilitySelected)},
		[3]int{int(Replica), int(Candidate), int(MissedHeartbeats)},
		[3]int{int(Candidate), int(Leader), int(ElectionWon)},
		[3]int{int(Candidate), int(Replica), int(ElectionLost)},
		[3]int{int(Leader), int(Idle), int(GracefulRelinquish)},
		[3]int{int(Replica), int(Idle), int(DiskPressureWithdraw)},
		[3]int{int(Leader), int(Idle), int(LeaderDiskPressureWithdraw)},
		[3]int{int(Candidate), int(Idle), int(CandidateDiskPressureWithdraw)},
		[3]int{int(Leader), int(Replica), int(PeerLeaderObserved)}:
		return '.'
	}
	if to == Idle {
		return 'M'
	}
	switch [2]Role{from, to} {
	case [2]Role{Idle, Replica}, [2]Role{Replica, Candidate}, [2]Role{Candidate, Leader},
		[2]Role{Candidate, Replica}, [2]Role{Leader, Replica}:
		return 'M'
	}
	return 'I'
}

// FuzzApply feeds any three bytes to Apply: it never panics, agrees
// with referenceApply, and returns the error kind, fields and message
// the rule demands.
func FuzzApply(f *testing.F) {
	for _, seed := range [][3]byte{{0, 1, 1}, {0, 3, 3}, {0, 1, 3}, {0, 0, 9}, {7, 0, 9}, {3, 0, 0}, {255, 255, 255}, {2, 1, 11}} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, from, to, sig byte) {
		tr, err := Apply(Role(from), Role(to), Signal(sig))
		want := referenceApply(Role(from), Role(to), Signal(sig))
		var ip *InvalidPairError
		var mm *SignalMismatchError
		switch want {
		case '.':
			if err != nil || tr != (Transition{Role(from), Role(to), Signal(sig)}) {
				t.Fatalf("Apply(%d,%d,%d) = %v, %v; want success", from, to, sig, tr, err)
			}
		case 'M':
			if !errors.As(err, &mm) || *mm != (SignalMismatchError{Role(from), Role(to), Signal(sig)}) ||
				!errors.Is(err, ErrSignalMismatch) || errors.Is(err, ErrInvalidPair) || tr != (Transition{}) {
				t.Fatalf("Apply(%d,%d,%d) = %v, %#v; want signal mismatch", from, to, sig, tr, err)
			}
			if err.Error() != "transition "+Role(from).String()+" → "+Role(to).String()+" not permitted under signal "+Signal(sig).String() {
				t.Fatalf("message %q", err)
			}
		case 'I':
			if !errors.As(err, &ip) || *ip != (InvalidPairError{Role(from), Role(to)}) ||
				!errors.Is(err, ErrInvalidPair) || errors.Is(err, ErrSignalMismatch) || tr != (Transition{}) {
				t.Fatalf("Apply(%d,%d,%d) = %v, %#v; want invalid pair", from, to, sig, tr, err)
			}
			if err.Error() != "invalid replica state transition: "+Role(from).String()+" → "+Role(to).String() {
				t.Fatalf("message %q", err)
			}
		}
	})
}

// model is the little a test needs to know to predict a Coordinator.
type model struct {
	role                     Role
	gen                      uint64
	committed                map[Transition]uint64
	leaderChanges, thrash    uint64
	invalidPairs, mismatches uint64
}

func newModel(r Role) *model { return &model{role: r, committed: map[Transition]uint64{}} }

// apply predicts one Transition(to, sig) call: it returns the outcome
// code and updates the model.
func (m *model) apply(to Role, sig Signal) byte {
	code := referenceApply(m.role, to, sig)
	switch code {
	case 'I':
		m.invalidPairs++
	case 'M':
		m.mismatches++
	case '.':
		if m.role == Idle && to == Idle {
			return code // the idempotent close commits nothing
		}
		m.committed[Transition{m.role, to, sig}]++
		m.gen++
		if to == Leader {
			m.leaderChanges++
		}
		if sig == MissedHeartbeats {
			m.thrash++
		}
		m.role = to
	}
	return code
}

// fireTarget is where Fire aims for sig, per the upstream matrix, or false.
func fireTarget(sig Signal) (Role, bool) {
	switch sig {
	case CapabilitySelected, ElectionLost, PeerLeaderObserved:
		return Replica, true
	case MissedHeartbeats:
		return Candidate, true
	case ElectionWon:
		return Leader, true
	case GracefulRelinquish, DiskPressureWithdraw, LeaderDiskPressureWithdraw, CandidateDiskPressureWithdraw, ChannelClose:
		return Idle, true
	}
	return 0, false
}

func (m *model) stats(name string) Stats {
	tr := make(map[Transition]uint64, len(m.committed))
	for k, v := range m.committed {
		tr[k] = v
	}
	return Stats{Name: name, Role: m.role, Generation: m.gen, Transitions: tr,
		LeaderChanges: m.leaderChanges, ElectionThrash: m.thrash,
		InvalidPairs: m.invalidPairs, SignalMismatches: m.mismatches}
}

// fataler is what testing.T and rapid.T have in common.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checkOutcome fails t unless err is what code predicts.
func checkOutcome(t fataler, code byte, err error) {
	t.Helper()
	switch {
	case code == '.' && err != nil:
		t.Fatalf("want success, got %v", err)
	case code == 'M' && !errors.Is(err, ErrSignalMismatch):
		t.Fatalf("want signal mismatch, got %v", err)
	case code == 'I' && !errors.Is(err, ErrInvalidPair):
		t.Fatalf("want invalid pair, got %v", err)
	}
}

// FuzzCoordinator decodes a byte string into a run of operations on one
// Coordinator (transitions, fires, cancelled contexts, reads, leases)
// and checks every step against the model. At the end the coordinator
// must still commit a valid transition.
func FuzzCoordinator(f *testing.F) {
	f.Add(byte(0), []byte{1, 1, 1, 2, 1, 3, 5, 1, 9, 6, 4})
	f.Add(byte(3), []byte{0, 0, 3, 0, 1, 10, 2, 0, 0, 0, 0, 5, 6, 1, 255})
	f.Add(byte(1), []byte{2, 3, 3, 2, 2, 4, 0, 9, 11, 0, 4, 0})
	f.Fuzz(func(t *testing.T, initial byte, ops []byte) {
		start := Role(initial % 4)
		m := newModel(start)
		var commits []Record
		c, err := NewCoordinator(WithInitialRole(start), WithName("fuzz"),
			WithObserver(func(_ context.Context, r Record) {
				if r.Err == nil {
					commits = append(commits, r)
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		var leases []Lease
		ctx := context.Background()
		next := func(i *int) byte {
			if *i >= len(ops) {
				return 0
			}
			b := ops[*i]
			*i++
			return b
		}
		for i := 0; i < len(ops); {
			switch op := next(&i) % 7; op {
			case 0: // Transition, roles and signals a little out of range too
				to, sig := Role(next(&i)%6), Signal(next(&i)%12)
				code := m.apply(to, sig)
				_, err := c.Transition(ctx, to, sig)
				checkOutcome(t, code, err)
			case 1: // Fire
				sig := Signal(next(&i) % 12)
				_, err := c.Fire(ctx, sig)
				if to, ok := fireTarget(sig); ok {
					checkOutcome(t, m.apply(to, sig), err)
				} else if !errors.Is(err, ErrUnknownSignal) {
					t.Fatalf("Fire(%v): %v", sig, err)
				}
			case 2: // a cancelled context changes nothing
				to, sig := Role(next(&i)%4), Signal(next(&i)%11)
				if _, err := c.Transition(cancelled, to, sig); !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled Transition: %v", err)
				}
			case 3:
				if c.Role() != m.role {
					t.Fatalf("Role() = %v, model %v", c.Role(), m.role)
				}
			case 4:
				if got, want := c.Stats(), m.stats("fuzz"); !statsEqual(got, want) {
					t.Fatalf("Stats() = %+v, model %+v", got, want)
				}
			case 5:
				l := c.Lease()
				if l != (Lease{m.role, m.gen}) {
					t.Fatalf("Lease() = %+v, model %v/%d", l, m.role, m.gen)
				}
				leases = append(leases, l)
			case 6:
				for _, l := range leases {
					if c.Holds(l) != (l.Generation == m.gen && l.Role == Leader) {
						t.Fatalf("Holds(%+v) = %v at generation %d", l, c.Holds(l), m.gen)
					}
				}
			}
		}
		if got, want := c.Stats(), m.stats("fuzz"); !statsEqual(got, want) {
			t.Fatalf("Stats() = %+v, model %+v", got, want)
		}
		for i, r := range commits {
			if r.Generation != uint64(i+1) {
				t.Fatalf("commit %d has Seq %d", i, r.Generation)
			}
		}
		// Never wedged: a valid transition still commits.
		sig := ChannelClose
		if m.role == Idle {
			sig = CapabilitySelected
		}
		if _, err := c.Fire(ctx, sig); err != nil {
			t.Fatalf("cannot commit %v from %v: %v", sig, m.role, err)
		}
		if c.Lease().Generation != m.gen+1 {
			t.Fatalf("generation %d after the final commit, want %d", c.Lease().Generation, m.gen+1)
		}
	})
}

func statsEqual(a, b Stats) bool {
	if len(a.Transitions) != len(b.Transitions) {
		return false
	}
	for k, v := range a.Transitions {
		if b.Transitions[k] != v {
			return false
		}
	}
	return a.Name == b.Name && a.Role == b.Role && a.Generation == b.Generation &&
		a.LeaderChanges == b.LeaderChanges && a.ElectionThrash == b.ElectionThrash &&
		a.InvalidPairs == b.InvalidPairs && a.SignalMismatches == b.SignalMismatches &&
		a.ObserverPanics == b.ObserverPanics
}
