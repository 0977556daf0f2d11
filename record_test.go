package rolefsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// records returns what one observer shared by two coordinators saw: a
// commit on "orders", a rejection on "payments".
func records(t *testing.T) []Record {
	t.Helper()
	var got []Record
	obs := WithObserver(func(_ context.Context, r Record) { got = append(got, r) })
	orders, err := NewCoordinator(WithName("orders"), obs)
	require.NoError(t, err)
	payments, err := NewCoordinator(WithName("payments"), obs)
	require.NoError(t, err)
	_, err = orders.Fire(context.Background(), CapabilitySelected)
	require.NoError(t, err)
	_, err = payments.Transition(context.Background(), Leader, ElectionWon)
	require.Error(t, err)
	require.Len(t, got, 2)
	return got
}

func TestRecordNamesItsCoordinator(t *testing.T) {
	got := records(t)
	assert.Equal(t, "orders", got[0].Name)
	assert.Equal(t, "payments", got[1].Name)
}

func TestRecordString(t *testing.T) {
	got := records(t)
	assert.Equal(t, "orders: Idle → Replica (CapabilitySelected) committed, generation 1", got[0].String())
	assert.Equal(t, "payments: Idle → Leader (ElectionWon) rejected at generation 0: invalid replica state transition: Idle → Leader",
		got[1].String())
	assert.Equal(t, got[0].String(), fmt.Sprintf("%v", got[0]), "%v prints the whole record")
	assert.Equal(t, "Leader → Idle (ChannelClose) committed, generation 9",
		Record{Transition: Transition{Leader, Idle, ChannelClose}, Generation: 9}.String(), "an unnamed coordinator's")
}

func TestRecordJSONRoundTrips(t *testing.T) {
	got := records(t)
	for _, r := range got {
		r.At = r.At.Round(0).UTC() // the monotonic reading and the zone do not travel
		b, err := json.Marshal(r)
		require.NoError(t, err)
		var back Record
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, r, back, "%s", b)
	}
	b, err := json.Marshal(got[1])
	require.NoError(t, err)
	assert.Contains(t, string(b), `"name":"payments","from":"Idle","to":"Leader","signal":"ElectionWon","generation":0,`)
	assert.Contains(t, string(b), `"error":"invalid replica state transition: Idle → Leader"`)
	var back Record
	require.NoError(t, json.Unmarshal(b, &back))
	var pair *InvalidPairError
	assert.ErrorAs(t, back.Err, &pair, "the typed error comes back")
	assert.ErrorIs(t, back.Err, ErrInvalidPair)

	// An error that is not the triple's comes back as its message.
	var other Record
	require.NoError(t, json.Unmarshal([]byte(`{"from":"Idle","to":"Replica","signal":"CapabilitySelected","seq":0,"error":"disk on fire"}`), &other))
	assert.EqualError(t, other.Err, "disk on fire")
	// A record written before the rename names its generation "seq".
	var old Record
	require.NoError(t, json.Unmarshal([]byte(`{"from":"Idle","to":"Replica","signal":"CapabilitySelected","seq":5}`), &old))
	assert.Equal(t, uint64(5), old.Generation)
	b, err = json.Marshal(old)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"seq"`, "written under its new name only")
	// Bad names are errors, and change nothing.
	before := other
	assert.Error(t, json.Unmarshal([]byte(`{"from":"Follower","to":"Replica","signal":"CapabilitySelected"}`), &other))
	assert.Equal(t, before, other)
	_, err = json.Marshal(Record{Transition: Transition{Role(9), Idle, ChannelClose}})
	assert.Error(t, err)
}

func TestRecordLease(t *testing.T) {
	c, err := NewCoordinator(WithInitialRole(Candidate))
	require.NoError(t, err)
	var lease Lease
	c2, err := NewCoordinator(WithInitialRole(Candidate), WithObserver(func(_ context.Context, r Record) {
		if r.Err == nil && r.To == Leader {
			lease = r.Lease()
		}
	}))
	require.NoError(t, err)
	for _, x := range []*Coordinator{c, c2} {
		_, err = x.Fire(context.Background(), ElectionWon)
		require.NoError(t, err)
	}
	assert.Equal(t, Lease{Role: Leader, Generation: 1}, lease)
	assert.True(t, c2.Holds(lease))
	_, err = c2.Fire(context.Background(), PeerLeaderObserved)
	require.NoError(t, err)
	assert.False(t, c2.Holds(lease), "deposed since")
	assert.Equal(t, Lease{}, Record{Transition: Transition{Leader, Leader, ElectionWon}, Generation: 4, Err: errors.New("no")}.Lease(),
		"a rejection grants nothing")
}

func TestTransitionText(t *testing.T) {
	for _, tr := range Matrix() {
		b, err := tr.MarshalText()
		require.NoError(t, err)
		var back Transition
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, tr, back)
	}
	var tr Transition
	require.NoError(t, tr.UnmarshalText([]byte("idle → REPLICA (capabilityselected)")), "names without regard to case")
	assert.Equal(t, Transition{Idle, Replica, CapabilitySelected}, tr)
	for _, bad := range []string{"", "Idle", "Idle → Replica", "Idle → Replica (CapabilitySelected", "Idle -> Replica (CapabilitySelected)",
		"Idel → Replica (CapabilitySelected)", "Idle → Replica (Promote)", "Idle → Rep (CapabilitySelected)"} {
		before := tr
		assert.Error(t, tr.UnmarshalText([]byte(bad)), "%q", bad)
		assert.Equal(t, before, tr, "%q changes nothing", bad)
	}
	_, err := Transition{Idle, Replica, 0}.MarshalText()
	assert.Error(t, err)
}

func TestStatsJSONRoundTrips(t *testing.T) {
	c, err := NewCoordinator(WithName("orders"))
	require.NoError(t, err)
	for _, s := range []Signal{CapabilitySelected, MissedHeartbeats, ElectionWon} {
		_, err := c.Fire(context.Background(), s)
		require.NoError(t, err)
	}
	st := c.Stats()
	b, err := json.Marshal(st)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"transitions":{"Candidate → Leader (ElectionWon)":1,"Idle → Replica (CapabilitySelected)":1,"Replica → Candidate (MissedHeartbeats)":1}`)
	assert.Contains(t, string(b), `"name":"orders","role":"Leader","generation":3,`)
	var back Stats
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, st, back)

	n := c.Counts()
	b, err = json.Marshal(n)
	require.NoError(t, err)
	var nb Counts
	require.NoError(t, json.Unmarshal(b, &nb))
	assert.Equal(t, n, nb)
}

func TestNilContextIsAnError(t *testing.T) {
	c, err := NewCoordinator(WithObserver(func(context.Context, Record) { t.Fatal("no record for a call that changed nothing") }))
	require.NoError(t, err)
	//nolint:staticcheck // a nil context on purpose
	_, err = c.Transition(nil, Replica, CapabilitySelected)
	assert.ErrorIs(t, err, ErrNilContext)
	//nolint:staticcheck // a nil context on purpose
	_, err = c.Fire(nil, CapabilitySelected)
	assert.ErrorIs(t, err, ErrNilContext)
	assert.Equal(t, Counts{}, c.Counts(), "nothing changed")
}
