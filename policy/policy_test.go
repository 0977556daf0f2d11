package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestNewHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interval  time.Duration
		threshold int
		wantIv    time.Duration
		wantN     int
		wantTO    time.Duration
	}{
		{"both zeros are the defaults, as the zero Heartbeat", 0, 0, 500 * time.Millisecond, 3, 1500 * time.Millisecond},
		{"upstream default", 500 * time.Millisecond, 3, 500 * time.Millisecond, 3, 1500 * time.Millisecond},
		{"threshold 0 is the default threshold", 200 * time.Millisecond, 0, 200 * time.Millisecond, 3, 600 * time.Millisecond},
		{"interval 0 is the default interval", 0, 2, 500 * time.Millisecond, 2, time.Second},
		{"a threshold of 1 is taken as given", 200 * time.Millisecond, 1, 200 * time.Millisecond, 1, 200 * time.Millisecond},
		{"exactly the minimum", 100 * time.Millisecond, 2, 100 * time.Millisecond, 2, 200 * time.Millisecond},
		{"saturates", time.Duration(1 << 62), 4, time.Duration(1 << 62), 4, time.Duration(1<<63 - 1)},
		{"the largest that does not saturate", time.Duration((1<<63 - 1) / 3), 3, time.Duration((1<<63 - 1) / 3), 3, time.Duration((1<<63 - 1) / 3 * 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHeartbeat(tc.interval, tc.threshold)
			require.NoError(t, err)
			assert.Equal(t, tc.wantIv, h.Interval())
			assert.Equal(t, tc.wantN, h.MissThreshold())
			assert.Equal(t, tc.wantTO, h.Timeout())
		})
	}
	h, err := NewHeartbeat(0, 0)
	require.NoError(t, err)
	assert.Equal(t, Heartbeat{}, h, "NewHeartbeat(0, 0) is the zero Heartbeat")
}

func TestNewHeartbeatRefuses(t *testing.T) {
	for _, tc := range []struct {
		interval  time.Duration
		threshold int
		msg       string
	}{
		{-time.Millisecond, 3, "policy: bad heartbeat configuration: interval -1ms, miss threshold 3 (neither may be negative)"},
		{time.Second, -1, "policy: bad heartbeat configuration: interval 1s, miss threshold -1 (neither may be negative)"},
		{10 * time.Millisecond, 3, "policy: bad heartbeat configuration: interval 10ms, at least 100ms (0 for the default, 500ms)"},
		{100*time.Millisecond - 1, 3, "policy: bad heartbeat configuration: interval 99.999999ms, at least 100ms (0 for the default, 500ms)"},
		{1, 5, "policy: bad heartbeat configuration: interval 1ns, at least 100ms (0 for the default, 500ms)"},
	} {
		h, err := NewHeartbeat(tc.interval, tc.threshold)
		require.ErrorIs(t, err, ErrBadConfig)
		assert.EqualError(t, err, tc.msg)
		assert.Equal(t, Heartbeat{}, h)
	}
}

func TestZeroHeartbeatIsTheUpstreamDefault(t *testing.T) {
	var h Heartbeat
	assert.Equal(t, 500*time.Millisecond, h.Interval())
	assert.Equal(t, 3, h.MissThreshold())
	assert.Equal(t, 1500*time.Millisecond, h.Timeout())
}

func TestSilent(t *testing.T) {
	h, err := NewHeartbeat(500*time.Millisecond, 3)
	require.NoError(t, err)
	for _, tc := range []struct {
		last, now int // ms
		want      bool
	}{
		{0, 0, false},
		{0, 1499, false},
		{0, 1500, true}, // now - last_seen >= threshold * heartbeat: the boundary counts
		{0, 1501, true},
		{1000, 2499, false},
		{1000, 2500, true},
		{2000, 1000, false}, // a last_seen in the future is not silence
	} {
		assert.Equal(t, tc.want, h.Silent(at(tc.last), at(tc.now)), "last %d ms, now %d ms", tc.last, tc.now)
	}
	one, err := NewHeartbeat(100*time.Millisecond, 1) // one missed beat
	require.NoError(t, err)
	assert.False(t, one.Silent(at(0), at(99)))
	assert.True(t, one.Silent(at(0), at(100)))
}

func TestElectUpstream(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name    string
		self    NodeID
		members []Member
		want    Outcome
	}{
		{"alone: self wins", 1, []Member{{ID: 1}}, Outcome{SelfWins, 1}},
		{"self has RTT 0 and wins every RTT", 3, []Member{
			{ID: 1, Healthy: true, RTT: ms(1), HasRTT: true},
			{ID: 2, Healthy: true, RTT: time.Microsecond, HasRTT: true},
			{ID: 3},
		}, Outcome{SelfWins, 3}},
		{"a peer measured at RTT 0 ties with self: the lower id wins", 3, []Member{
			{ID: 2, Healthy: true, RTT: 0, HasRTT: true},
			{ID: 3},
		}, Outcome{PeerWins, 2}},
		{"lowest RTT wins when self is not listed", 9, []Member{
			{ID: 1, Healthy: true, RTT: ms(30), HasRTT: true},
			{ID: 2, Healthy: true, RTT: ms(10), HasRTT: true},
			{ID: 3, Healthy: true, RTT: ms(20), HasRTT: true},
		}, Outcome{PeerWins, 2}},
		{"RTT tie: lower id", 9, []Member{
			{ID: 4, Healthy: true, RTT: ms(10), HasRTT: true},
			{ID: 2, Healthy: true, RTT: ms(10), HasRTT: true},
		}, Outcome{PeerWins, 2}},
		{"missing RTT ranks last, not excluded", 9, []Member{
			{ID: 1, Healthy: true},
			{ID: 5, Healthy: true, RTT: time.Hour, HasRTT: true},
		}, Outcome{PeerWins, 5}},
		{"only peers without RTT: lowest id", 9, []Member{
			{ID: 7, Healthy: true},
			{ID: 4, Healthy: true},
		}, Outcome{PeerWins, 4}},
		{"unhealthy peers are skipped", 9, []Member{
			{ID: 1, Healthy: false, RTT: 0, HasRTT: true},
			{ID: 2, Healthy: true, RTT: ms(50), HasRTT: true},
		}, Outcome{PeerWins, 2}},
		{"self is healthy whatever its flag says", 2, []Member{
			{ID: 1, Healthy: true, RTT: ms(1), HasRTT: true},
			{ID: 2, Healthy: false, RTT: time.Hour, HasRTT: true},
		}, Outcome{SelfWins, 2}},
		{"a negative RTT is no sample", 9, []Member{
			{ID: 1, Healthy: true, RTT: -ms(5), HasRTT: true},
			{ID: 2, Healthy: true, RTT: ms(5), HasRTT: true},
		}, Outcome{PeerWins, 2}},
		{"no healthy member, self not listed", 9, []Member{{ID: 1}, {ID: 2}}, Outcome{NoEligible, 0}},
		{"empty view", 1, nil, Outcome{NoEligible, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]Member(nil), tc.members...)
			assert.Equal(t, tc.want, Upstream.Elect(tc.self, tc.members))
			assert.Equal(t, tc.want, Elect(tc.self, tc.members), "Elect is Upstream.Elect")
			assert.Equal(t, before, tc.members, "Elect must not modify the view")
		})
	}
}

// TestUpstreamSymmetricRTTEveryoneElectsItself pins the upstream defect
// the tiebreak exists for (upstream's election): with symmetric RTT, every
// Candidate that sees the same healthy set elects itself.
func TestUpstreamSymmetricRTTEveryoneElectsItself(t *testing.T) {
	ids := []NodeID{1, 2, 3, 4, 5}
	for _, self := range ids {
		var view []Member
		for _, id := range ids {
			view = append(view, Member{ID: id, Healthy: true, RTT: 10 * time.Millisecond, HasRTT: true, Tail: 7})
		}
		assert.Equal(t, Outcome{SelfWins, self}, Upstream.Elect(self, view))
		assert.Equal(t, NodeID(1), HighestTail.Elect(self, view).Winner, "every node agrees on the lowest id at equal tails")
	}
}

func TestElectHighestTail(t *testing.T) {
	for _, tc := range []struct {
		name    string
		self    NodeID
		members []Member
		want    Outcome
	}{
		{"highest tail wins", 1, []Member{
			{ID: 1, Tail: 10},
			{ID: 2, Healthy: true, Tail: 12},
			{ID: 3, Healthy: true, Tail: 11},
		}, Outcome{PeerWins, 2}},
		{"self with the highest tail wins", 3, []Member{
			{ID: 1, Healthy: true, Tail: 10},
			{ID: 3, Tail: 11},
		}, Outcome{SelfWins, 3}},
		{"equal tails: lowest id", 3, []Member{
			{ID: 3, Tail: 5},
			{ID: 2, Healthy: true, Tail: 5},
			{ID: 4, Healthy: true, Tail: 5},
		}, Outcome{PeerWins, 2}},
		{"RTT does not matter", 1, []Member{
			{ID: 1, Tail: 5},
			{ID: 2, Healthy: true, Tail: 5, RTT: time.Hour, HasRTT: true},
		}, Outcome{SelfWins, 1}},
		{"an unhealthy longer tail is skipped", 1, []Member{
			{ID: 1, Tail: 5},
			{ID: 2, Healthy: false, Tail: 50},
		}, Outcome{SelfWins, 1}},
		{"no healthy member", 9, []Member{{ID: 1, Tail: 3}}, Outcome{NoEligible, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, HighestTail.Elect(tc.self, tc.members))
		})
	}
}

func TestHighestTailAgreesAcrossNodes(t *testing.T) {
	view := []Member{
		{ID: 1, Healthy: true, Tail: 40, RTT: 3 * time.Millisecond, HasRTT: true},
		{ID: 2, Healthy: true, Tail: 41, RTT: 9 * time.Millisecond, HasRTT: true},
		{ID: 3, Healthy: true, Tail: 41},
		{ID: 4, Healthy: true, Tail: 12, RTT: time.Millisecond, HasRTT: true},
	}
	for _, self := range []NodeID{1, 2, 3, 4} {
		o := HighestTail.Elect(self, view)
		assert.Equal(t, NodeID(2), o.Winner, "node %d", self)
	}
}

func TestKeepLeadership(t *testing.T) {
	for _, tc := range []struct {
		self     NodeID
		selfTail uint64
		peer     NodeID
		peerTail uint64
		keep     bool
	}{
		{1, 10, 2, 9, true},   // longer tail keeps
		{2, 10, 1, 9, true},   // whatever the ids
		{1, 9, 2, 10, false},  // shorter tail concedes
		{2, 9, 1, 10, false},  //
		{1, 10, 2, 10, true},  // equal tails: lower id keeps
		{2, 10, 1, 10, false}, // equal tails: higher id concedes
		{0, 0, 0, 0, false},   // the same id twice: concede
	} {
		got := KeepLeadership(tc.self, tc.selfTail, tc.peer, tc.peerTail)
		assert.Equal(t, tc.keep, got, "%+v", tc)
		if tc.self != tc.peer {
			// Exactly one of two distinct leaders keeps leadership.
			assert.NotEqual(t, got, KeepLeadership(tc.peer, tc.peerTail, tc.self, tc.selfTail), "%+v", tc)
		}
	}
}

func TestDiskPressureSignal(t *testing.T) {
	for _, tc := range []struct {
		role rolefsm.Role
		sig  rolefsm.Signal
		ok   bool
	}{
		{rolefsm.Replica, rolefsm.DiskPressureWithdraw, true},
		{rolefsm.Leader, rolefsm.LeaderDiskPressureWithdraw, true},
		{rolefsm.Candidate, rolefsm.CandidateDiskPressureWithdraw, true},
		{rolefsm.Idle, 0, false},
		{rolefsm.Role(9), 0, false},
	} {
		sig, ok := DiskPressureSignal(tc.role)
		assert.Equal(t, tc.sig, sig, "%v", tc.role)
		assert.Equal(t, tc.ok, ok, "%v", tc.role)
		if ok {
			_, err := rolefsm.Apply(tc.role, rolefsm.Idle, sig)
			assert.NoError(t, err, "the signal must be legal from %v", tc.role)
		}
	}
}

func TestOutcomeTransition(t *testing.T) {
	for _, tc := range []struct {
		o    Outcome
		role rolefsm.Role
		sig  rolefsm.Signal
	}{
		{Outcome{SelfWins, 1}, rolefsm.Leader, rolefsm.ElectionWon},
		{Outcome{PeerWins, 2}, rolefsm.Replica, rolefsm.ElectionLost},
		{Outcome{NoEligible, 0}, rolefsm.Replica, rolefsm.ElectionLost},
	} {
		role, sig := tc.o.Transition()
		assert.Equal(t, tc.role, role)
		assert.Equal(t, tc.sig, sig)
		_, err := rolefsm.Apply(rolefsm.Candidate, role, sig)
		assert.NoError(t, err)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range Policies() {
		got, err := ParsePolicy(p.Name())
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
	_, err := ParsePolicy("raft")
	assert.EqualError(t, err, `policy: unknown election policy "raft" (want tail or upstream)`)
	assert.Equal(t, "SelfWins", SelfWins.String())
	assert.Equal(t, "Result(7)", Result(7).String())
}
