package peers

import (
	"context"
	"errors"
	"testing"

	"github.com/looplab/fsm"
	"github.com/qmuntal/stateless"
	"github.com/rolefsm/rolefsm"
)

// cycle is Idle → Replica → Candidate → Leader → Idle, one step per op.
var cycle = [4]rolefsm.Transition{
	{From: rolefsm.Idle, To: rolefsm.Replica, Signal: rolefsm.CapabilitySelected},
	{From: rolefsm.Replica, To: rolefsm.Candidate, Signal: rolefsm.MissedHeartbeats},
	{From: rolefsm.Candidate, To: rolefsm.Leader, Signal: rolefsm.ElectionWon},
	{From: rolefsm.Leader, To: rolefsm.Idle, Signal: rolefsm.GracefulRelinquish},
}

// machine is one implementation of the matrix: step fires sig, state
// names the current role.
type machine struct {
	step  func(ctx context.Context, to rolefsm.Role, sig rolefsm.Signal) error
	state func() rolefsm.Role
}

// looplabMachine is raw looplab/fsm with the matrix as events and two
// counting callbacks.
func looplabMachine() machine {
	var events fsm.Events
	for _, t := range rolefsm.Matrix() {
		events = append(events, fsm.EventDesc{Name: t.Signal.String(), Src: []string{t.From.String()}, Dst: t.To.String()})
	}
	var before, after int
	m := fsm.NewFSM("Idle", events, fsm.Callbacks{
		"before_event": func(context.Context, *fsm.Event) { before++ },
		"after_event":  func(context.Context, *fsm.Event) { after++ },
	})
	return machine{
		step: func(ctx context.Context, _ rolefsm.Role, sig rolefsm.Signal) error {
			return m.Event(ctx, sig.String())
		},
		state: func() rolefsm.Role { r, _ := rolefsm.ParseRole(m.Current()); return r },
	}
}

func rolefsmMachine() machine {
	c, err := rolefsm.NewCoordinator()
	if err != nil {
		panic(err)
	}
	return machine{
		step: func(ctx context.Context, to rolefsm.Role, sig rolefsm.Signal) error {
			_, err := c.Transition(ctx, to, sig)
			return err
		},
		state: c.Role,
	}
}

// statelessMachine configures qmuntal/stateless with the same matrix and
// two counting hooks.
func statelessMachine(mode stateless.FiringMode) machine {
	sm := stateless.NewStateMachineWithMode(rolefsm.Idle, mode)
	for _, t := range rolefsm.Matrix() {
		if t.From == t.To {
			sm.Configure(t.From).Ignore(t.Signal) // the idempotent close
			continue
		}
		sm.Configure(t.From).Permit(t.Signal, t.To)
	}
	var before, after int
	sm.OnTransitioning(func(context.Context, stateless.Transition) { before++ })
	sm.OnTransitioned(func(context.Context, stateless.Transition) { after++ })
	return machine{
		step: func(ctx context.Context, _ rolefsm.Role, sig rolefsm.Signal) error {
			return sm.FireCtx(ctx, sig)
		},
		state: func() rolefsm.Role { return sm.MustState().(rolefsm.Role) },
	}
}

var impls = []struct {
	name string
	make func() machine
}{
	{"looplab", looplabMachine},
	{"rolefsm", rolefsmMachine},
	{"stateless-immediate", func() machine { return statelessMachine(stateless.FiringImmediate) }},
	{"stateless-queued", func() machine { return statelessMachine(stateless.FiringQueued) }},
}

// TestPeersWalkTheSameMachine checks that every implementation really
// commits the cycle and really rejects the rejected step, so that the
// benchmarks compare like with like.
func TestPeersWalkTheSameMachine(t *testing.T) {
	ctx := context.Background()
	for _, impl := range impls {
		m := impl.make()
		for i := 0; i < 8; i++ {
			step := cycle[i&3]
			if got := m.state(); got != step.From {
				t.Fatalf("%s: in %v before step %v", impl.name, got, step)
			}
			if err := m.step(ctx, step.To, step.Signal); err != nil {
				t.Fatalf("%s: %v: %v", impl.name, step, err)
			}
		}
		if err := m.step(ctx, rolefsm.Leader, rolefsm.ElectionWon); err == nil {
			t.Fatalf("%s: ElectionWon from Idle was not rejected", impl.name)
		}
		if m.state() != rolefsm.Idle {
			t.Fatalf("%s: a rejected step moved the machine", impl.name)
		}
	}
}

// perImpl runs op b.N times on a fresh machine of each implementation,
// as one sub-benchmark per implementation; op's error fails it.
func perImpl(b *testing.B, op func(ctx context.Context, m machine, i int) error) {
	for _, impl := range impls {
		impl := impl
		b.Run("impl="+impl.name, func(b *testing.B) {
			m := impl.make()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := op(ctx, m, i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCycle is one committed step of the cycle per op.
func BenchmarkCycle(b *testing.B) {
	perImpl(b, func(ctx context.Context, m machine, i int) error {
		t := cycle[i&3]
		return m.step(ctx, t.To, t.Signal)
	})
}

// BenchmarkReject is ElectionWon from Idle, rejected, per op.
func BenchmarkReject(b *testing.B) {
	perImpl(b, func(ctx context.Context, m machine, _ int) error {
		if err := m.step(ctx, rolefsm.Leader, rolefsm.ElectionWon); err == nil {
			return errors.New("not rejected")
		}
		return nil
	})
}
