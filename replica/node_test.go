package replica

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func newNode(t *testing.T, id NodeID) *Node {
	t.Helper()
	n, err := NewNode(Config{ID: id}, t0)
	require.NoError(t, err)
	return n
}

func TestNodeDefaults(t *testing.T) {
	n := newNode(t, 3)
	assert.Equal(t, NodeID(3), n.ID())
	assert.Equal(t, policy.DefaultInterval, n.Heartbeat().Interval())
	assert.Equal(t, policy.DefaultMissThreshold, n.Heartbeat().MissThreshold())
	assert.Empty(t, n.Channels())
	assert.Nil(t, n.Peers())
	assert.Nil(t, n.Coordinator("a"))
	assert.Nil(t, n.Channel("a"))
	_, err := n.Lease("a")
	require.ErrorIs(t, err, ErrUnknownChannel)
}

// TestOpenKeepsToTheTransportsLimits: a node told what its transport
// carries opens no channel it could not send, and changes nothing.
func TestOpenKeepsToTheTransportsLimits(t *testing.T) {
	n, err := NewNode(Config{ID: 1, Limits: Limits{MaxChannelName: 5}}, t0)
	require.NoError(t, err)
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "12345", Replicas: []NodeID{1}}))
	err = n.Open(ctx, t0, ChannelConfig{Name: "123456", Replicas: []NodeID{1}})
	require.ErrorIs(t, err, ErrBadConfig)
	assert.EqualError(t, err, "replica: bad configuration: a channel name of 6 bytes, and the transport carries at most 5")
	assert.Equal(t, []string{"12345"}, n.Channels())
	_, err = NewNode(Config{ID: 1, Limits: Limits{MaxChannelName: -1}}, t0)
	require.ErrorIs(t, err, ErrBadConfig)
}

func TestInReplicaSet(t *testing.T) {
	n := newNode(t, 1)
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1, 3}}))
	assert.True(t, n.InReplicaSet("a", 1), "the node itself")
	assert.True(t, n.InReplicaSet("a", 3))
	assert.False(t, n.InReplicaSet("a", 2))
	assert.False(t, n.InReplicaSet("nosuch", 1))
}

func TestChannelHandle(t *testing.T) {
	n := newNode(t, 1)
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "b", Replicas: []NodeID{1, 2}}))
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{2, 1}, Tail: 4}))
	assert.Equal(t, []string{"b", "a"}, n.Channels(), "in the order opened")

	ch := n.Channel("a")
	require.NotNil(t, ch)
	assert.Equal(t, "a", ch.Name())
	assert.Same(t, n.Coordinator("a"), ch.Coordinator())
	assert.Equal(t, "a", ch.Coordinator().Name(), "the coordinator is named after the channel")
	assert.Equal(t, rolefsm.Lease{}, ch.Lease())
	id, tail, claimed := ch.Follows()
	assert.Zero(t, id)
	assert.Zero(t, tail)
	assert.False(t, claimed)

	require.NoError(t, n.Step(ctx, at(10), Batch{From: 2, Entries: []Entry{{Channel: "a", Role: rolefsm.Leader, Tail: 9}}}))
	id, tail, claimed = ch.Follows()
	assert.Equal(t, NodeID(2), id)
	assert.Equal(t, uint64(9), tail)
	assert.True(t, claimed)
	assert.Equal(t, at(10), ch.Contact())

	// Win the election on b: Follows says nobody while it leads.
	n.Tick(ctx, at(1500))
	n.Tick(ctx, at(1510))
	b := n.Channel("b")
	require.Equal(t, rolefsm.Leader, b.Coordinator().Role())
	id, _, _ = b.Follows()
	assert.Zero(t, id)
	lease, err := n.Lease("b")
	require.NoError(t, err)
	assert.Equal(t, b.Lease(), lease)
	assert.Equal(t, rolefsm.Lease{Role: rolefsm.Leader, Generation: 3}, lease)
	assert.True(t, b.Coordinator().Holds(lease))

	require.NoError(t, n.Remove(ctx, at(1600), "a"))
	assert.Equal(t, []string{"b"}, n.Channels())
	assert.Nil(t, n.Channel("a"))
	assert.Equal(t, rolefsm.Idle, ch.Status().Role, "a removed channel's handle reports its last state")
	err = n.Step(ctx, at(1700), Batch{From: 2, Entries: []Entry{{Channel: "a", Role: rolefsm.Leader}}})
	require.ErrorIs(t, err, ErrUnknownChannel)
}

func TestOpenRefusesCoordinatorsThatDoNotStartIdle(t *testing.T) {
	n := newNode(t, 1)
	err := n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1}, Options: []rolefsm.Option{rolefsm.WithInitialRole(rolefsm.Leader)}})
	require.ErrorIs(t, err, ErrBadConfig)
	assert.EqualError(t, err, `replica: bad configuration: channel "a": its coordinator starts Leader, not Idle`)
	err = n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1}, Options: []rolefsm.Option{nil}})
	assert.EqualError(t, err, `replica: channel "a": rolefsm: nil Option`)
	assert.Empty(t, n.Channels(), "nothing opened")

	// A replica set of the node alone is a channel with no peers.
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1}}))
	assert.Empty(t, n.Tick(ctx, t0), "nobody to send to")
	n.Tick(ctx, at(1500))
	n.Tick(ctx, at(1501))
	assert.Equal(t, rolefsm.Leader, n.Coordinator("a").Role(), "it elects itself")
}

func TestStepErrorLists(t *testing.T) {
	n := newNode(t, 1)
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1, 2}}))
	b := Batch{From: 2}
	for _, name := range []string{"w", "x", "y", "z", "a"} {
		b.Entries = append(b.Entries, Entry{Channel: name, Role: rolefsm.Replica})
	}
	err := n.Step(ctx, t0, b)
	var se *StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, NodeID(2), se.From)
	require.Len(t, se.Dropped, 4)
	assert.Equal(t, `replica: 4 of the entries from node 2 dropped: channel "w": replica: unknown channel; `+
		`channel "x": replica: unknown channel; channel "y": replica: unknown channel; and 1 more`, err.Error())
	assert.Len(t, se.Unwrap(), 4)
	assert.ErrorIs(t, err, ErrUnknownChannel)
	assert.NotErrorIs(t, err, ErrNotInReplicaSet)
	assert.True(t, errors.Is(se.Dropped[3], ErrUnknownChannel))
	assert.Equal(t, "z", se.Dropped[3].Channel)
	assert.True(t, n.Peers()[0].Heard, "the sender was heard: its batch was authentic")
}

// TestBadRolesCostNoFormattedError: refusing a heartbeat's entries for
// their roles formats nothing per entry (a 1.4 KB datagram of them cost
// 1,747 allocations when each was an fmt.Errorf); the reason is still
// ErrBadRole, and still names the role when printed.
func TestBadRolesCostNoFormattedError(t *testing.T) {
	n := newNode(t, 1)
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1, 2}}))
	b := Batch{From: 2}
	for range 230 {
		b.Entries = append(b.Entries, Entry{Channel: "a", Role: rolefsm.Role(200)})
	}
	allocs := testing.AllocsPerRun(10, func() { _ = n.Step(ctx, t0, b) })
	assert.LessOrEqual(t, allocs, 15.0, "the list of dropped entries grows, and nothing else")
	err := n.Step(ctx, t0, b)
	var se *StepError
	require.ErrorAs(t, err, &se)
	require.Len(t, se.Dropped, 230)
	assert.ErrorIs(t, se.Dropped[0], ErrBadRole)
	assert.Equal(t, `channel "a": replica: heartbeat with a role that sends none: `+rolefsm.Role(200).String(), se.Dropped[0].Error())
}

// TestSteadyStateAllocatesNothing: a settled node's Tick and Step do
// not allocate, whatever the number of channels.
func TestSteadyStateAllocatesNothing(t *testing.T) {
	n := newNode(t, 2)
	in := Batch{From: 1}
	for _, name := range []string{"a", "b", "c"} {
		require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: name, Replicas: []NodeID{1, 2, 3}}))
		in.Entries = append(in.Entries, Entry{Channel: name, Role: rolefsm.Leader, Tail: 1})
	}
	ms := 0
	step := func() {
		ms += 100
		require.NoError(t, n.Step(ctx, at(ms), in))
		n.Tick(ctx, at(ms))
	}
	for range 20 {
		step()
	}
	assert.Zero(t, testing.AllocsPerRun(200, step))
	assert.Equal(t, rolefsm.Replica, n.Coordinator("a").Role())
}

// TestCancelledContextStillDecides: a context that is already done
// reaches the observers but cannot stop a decision: the transition a
// Tick or Step owes is made.
func TestCancelledContextStillDecides(t *testing.T) {
	n := newNode(t, 1)
	var seen []error
	obs := func(ctx context.Context, _ rolefsm.Record) { seen = append(seen, ctx.Err()) }
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1, 2},
		Options: []rolefsm.Option{rolefsm.WithObserver(obs)}}))
	done, cancel := context.WithCancel(ctx)
	cancel()
	n.Tick(done, at(1500))
	assert.Equal(t, rolefsm.Candidate, n.Coordinator("a").Role())
	n.Tick(done, at(1550))
	assert.Equal(t, rolefsm.Leader, n.Coordinator("a").Role())
	require.NoError(t, n.Step(done, at(1600), Batch{From: 2, Entries: []Entry{{Channel: "a", Role: rolefsm.Leader, Tail: 5}}}))
	assert.Equal(t, rolefsm.Replica, n.Coordinator("a").Role())
	assert.Equal(t, []error{nil, nil, nil, nil}, seen, "observers see a context that is not cancelled")
}

// TestLargeNodeIDs: ids beyond the lookup table are found by search.
func TestLargeNodeIDs(t *testing.T) {
	n := newNode(t, 5000)
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "a", Replicas: []NodeID{1 << 40, 5000, 3, 4096, 4095}}))
	var ids []NodeID
	for _, p := range n.Peers() {
		ids = append(ids, p.ID)
	}
	assert.Equal(t, []NodeID{3, 4095, 4096, 1 << 40}, ids)
	for _, id := range ids {
		require.NoError(t, n.Step(ctx, at(10), Batch{From: id, Entries: []Entry{{Channel: "a", Role: rolefsm.Replica, Tail: uint64(id)}}}), "node %d", id)
		require.NoError(t, n.ObserveRTT(id, time.Millisecond), "node %d", id)
	}
	for _, id := range []NodeID{2, 4, 4094, 4097, 1<<40 + 1, 1<<40 - 1} {
		require.ErrorIs(t, n.Step(ctx, at(20), Batch{From: id}), ErrUnknownPeer, "node %d", id)
	}
	// The one with the highest tail wins the election: every peer's
	// entry reached its own member.
	n.Tick(ctx, at(1500))
	n.Tick(ctx, at(1501))
	id, _, _ := n.Channel("a").Follows()
	assert.Equal(t, NodeID(1<<40), id)
	msgs := n.Tick(ctx, at(2000))
	assert.Len(t, msgs, 4, "a batch to each peer")
}

// TestTicksBetweenHeartbeatsLeaveChannelsAlone: a Tick visits the
// channels only at a heartbeat or when a deadline is due, so a node
// with many settled channels pays for one visit an interval, not ten; a
// role changed on a coordinator behind the node's back is seen at the
// next heartbeat; a goodbye makes the next Tick visit.
func TestTicksBetweenHeartbeatsLeaveChannelsAlone(t *testing.T) {
	n := newNode(t, 2) // 500 ms interval, 1.5 s timeout; heartbeats at multiples of 500 ms
	claim := Batch{From: 1}
	for _, name := range []string{"a", "b"} {
		require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: name, Replicas: []NodeID{1, 2, 3}}))
		claim.Entries = append(claim.Entries, Entry{Channel: name, Role: rolefsm.Leader, Tail: 1})
	}
	interval := func(from int) uint64 { // ticks every 50 ms, the leader's claim at each heartbeat
		before := n.scans
		for ms := from + 50; ms <= from+500; ms += 50 {
			if ms%500 == 0 {
				require.NoError(t, n.Step(ctx, at(ms), claim))
			}
			n.Tick(ctx, at(ms))
		}
		return n.scans - before
	}
	interval(-50) // opened: both wait, then follow node 1
	require.Equal(t, rolefsm.Replica, n.Coordinator("a").Role())
	assert.Equal(t, uint64(1), interval(450), "one visit an interval: the heartbeat's")

	// Behind the node's back, a's coordinator stands for election: the
	// node runs it at its next heartbeat (node 1 wins on its tail), and
	// after that role change visits once more, to learn the new deadline.
	_, err := n.Coordinator("a").Fire(ctx, rolefsm.MissedHeartbeats)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), interval(950))
	assert.Equal(t, rolefsm.Replica, n.Coordinator("a").Role())
	leader, _, _ := n.Channel("a").Follows()
	assert.Equal(t, NodeID(1), leader)

	// Node 1 says goodbye: the next Tick visits, and both channels stand.
	require.NoError(t, n.Step(ctx, at(1460), Batch{From: 1, Entries: []Entry{{Channel: "a", Role: rolefsm.Idle}, {Channel: "b", Role: rolefsm.Idle}}}))
	n.Tick(ctx, at(1470))
	assert.Equal(t, rolefsm.Candidate, n.Coordinator("a").Role())
	assert.Equal(t, rolefsm.Candidate, n.Coordinator("b").Role())
}

// Step finds each entry's channel by its place in the peer's previous
// heartbeat when it can; whatever the order, the places, a channel
// removed and opened again under its name, or names the node does not
// hold, every entry reaches the channel it names, and the places kept
// never outnumber the channels the peer shares.
func TestStepFindsChannelsByPlace(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, 1)
	for _, name := range []string{"a", "b", "c"} {
		require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: name, Replicas: []NodeID{1, 2}}))
	}
	tails := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, name := range []string{"a", "b", "c"} {
			st, err := n.Status(name)
			require.NoError(t, err)
			out[name] = st.LeaderTail
		}
		return out
	}
	step := func(seq uint64, entries ...Entry) error {
		return n.Step(ctx, t0.Add(time.Duration(seq)*time.Millisecond), Batch{From: 2, Seq: seq, Entries: entries})
	}
	lead := func(name string, tail uint64) Entry { return Entry{Channel: name, Role: rolefsm.Leader, Tail: tail} }
	require.NoError(t, step(1, lead("a", 1), lead("b", 1), lead("c", 1)))
	assert.Equal(t, map[string]uint64{"a": 1, "b": 1, "c": 1}, tails())
	// Another order, and one left out: each still reaches its channel.
	require.NoError(t, step(2, lead("c", 2), lead("a", 2)))
	assert.Equal(t, map[string]uint64{"a": 2, "b": 1, "c": 2}, tails())
	// One heartbeat in two datagrams (one Seq): the places go on.
	require.NoError(t, step(3, lead("c", 3)))
	require.NoError(t, step(3, lead("a", 3), lead("b", 3)))
	assert.Equal(t, map[string]uint64{"a": 3, "b": 3, "c": 3}, tails())
	// b removed and opened again: its place names a channel gone.
	require.NoError(t, n.Remove(ctx, t0, "b"))
	require.NoError(t, n.Open(ctx, t0, ChannelConfig{Name: "b", Replicas: []NodeID{1, 2}}))
	require.NoError(t, step(4, lead("c", 4), lead("a", 4), lead("b", 4)))
	assert.Equal(t, map[string]uint64{"a": 4, "b": 4, "c": 4}, tails())
	// Names the node does not hold are refused, and the places kept stay
	// within the three channels node 2 shares.
	var names []Entry
	for i := range 50 {
		names = append(names, lead(fmt.Sprintf("x%d", i), 5))
	}
	var se *StepError
	require.ErrorAs(t, step(5, names...), &se)
	assert.Len(t, se.Dropped, 50)
	p := n.peer(2)
	assert.LessOrEqual(t, len(p.seen), p.refs)
	require.NoError(t, step(6, lead("a", 6), lead("b", 6), lead("c", 6)))
	assert.Equal(t, map[string]uint64{"a": 6, "b": 6, "c": 6}, tails())
}
