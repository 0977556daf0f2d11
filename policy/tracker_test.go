package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTracker(t *testing.T) *Tracker {
	t.Helper()
	h, err := NewHeartbeat(500*time.Millisecond, 3)
	require.NoError(t, err)
	return NewTracker(1, h, at(0))
}

func TestTrackerLeaderLost(t *testing.T) {
	tr := newTracker(t)
	tr.Follow(2, at(0))
	tr.Heard(2, at(1000), 5, true)
	assert.False(t, tr.LeaderLost(at(2499)))
	assert.True(t, tr.LeaderLost(at(2500)))

	// A fresh leader gets a full timeout from adoption, even if its last
	// heartbeat is old.
	tr.Heard(3, at(100), 1, true)
	tr.Follow(3, at(2600))
	assert.False(t, tr.LeaderLost(at(4099)))
	assert.True(t, tr.LeaderLost(at(4100)))
	id, ok := tr.Leader()
	assert.Equal(t, NodeID(3), id)
	assert.True(t, ok)
}

// TestTrackerNoLeaderStillTimesOut is upstream's stuck-replica defect,
// avoided: a Replica that follows nobody stands for election after the
// timeout instead of waiting forever.
func TestTrackerNoLeaderStillTimesOut(t *testing.T) {
	tr := newTracker(t)
	assert.False(t, tr.LeaderLost(at(1499)))
	assert.True(t, tr.LeaderLost(at(1500)))
	tr.Unfollow(at(5000))
	_, ok := tr.Leader()
	assert.False(t, ok)
	assert.False(t, tr.LeaderLost(at(6499)))
	assert.True(t, tr.LeaderLost(at(6500)))
	// Heartbeats from peers that are not the leader do not reset it.
	tr.Heard(2, at(6400), 9, true)
	assert.True(t, tr.LeaderLost(at(6500)))
}

// TestTrackerFollowedNodeMustClaimLeadership: a node followed because
// it won an election in this node's view, but that keeps sending
// Replica heartbeats, does not hold the follower back.
func TestTrackerFollowedNodeMustClaimLeadership(t *testing.T) {
	tr := newTracker(t)
	tr.Follow(2, at(0))
	for ms := 0; ms <= 3000; ms += 500 {
		tr.Heard(2, at(ms), 1, false)
	}
	assert.True(t, tr.LeaderLost(at(1500)))
	assert.True(t, tr.Healthy(2, at(3000)), "it is healthy, just not a leader")
	tr.Heard(2, at(3100), 1, true)
	assert.False(t, tr.LeaderLost(at(4599)))
	assert.True(t, tr.LeaderLost(at(4600)))
}

func TestTrackerIgnoresOldAndSelfHeartbeats(t *testing.T) {
	tr := newTracker(t)
	tr.Heard(2, at(1000), 8, false)
	tr.Heard(2, at(900), 3, false) // reordered: older than what was heard
	tr.Heard(1, at(1000), 99, true)
	assert.Equal(t, []Member{
		{ID: 1, Healthy: true, HasRTT: true, Tail: 4},
		{ID: 2, Healthy: true, Tail: 8},
	}, tr.Members(at(1000), 4, nil))
}

func TestTrackerMembers(t *testing.T) {
	tr := newTracker(t)
	tr.Heard(2, at(0), 8, false)
	tr.Heard(3, at(1000), 9, false)
	require.NoError(t, tr.SampleRTT(3, 20*time.Millisecond))
	require.NoError(t, tr.SampleRTT(4, 5*time.Millisecond)) // sampled, never heard: not listed
	require.NoError(t, tr.SampleRTT(1, time.Second))        // self: ignored
	got := tr.Members(at(1500), 7, nil)
	assert.Equal(t, []Member{
		{ID: 1, Healthy: true, HasRTT: true, Tail: 7},
		{ID: 2, Healthy: false, Tail: 8}, // silent since 0: 1500 ms is the timeout
		{ID: 3, Healthy: true, RTT: 20 * time.Millisecond, HasRTT: true, Tail: 9},
	}, got)
	assert.True(t, tr.Healthy(1, at(1e9)))
	assert.False(t, tr.Healthy(2, at(1500)))
	assert.True(t, tr.Healthy(3, at(2499)))
	assert.False(t, tr.Healthy(4, at(0)), "never heard")
	assert.False(t, tr.Healthy(5, at(0)), "unknown")

	buf := make([]Member, 0, 8)
	allocs := testing.AllocsPerRun(100, func() { buf = tr.Members(at(1500), 7, buf[:0]) })
	assert.Zero(t, allocs, "Members into a reused buffer")
}

func TestTrackerRejectsNegativeRTT(t *testing.T) {
	tr := newTracker(t)
	tr.Heard(2, at(0), 1, false)
	require.NoError(t, tr.SampleRTT(2, 3*time.Millisecond))
	err := tr.SampleRTT(2, -time.Millisecond)
	require.ErrorIs(t, err, ErrNegativeRTT)
	assert.EqualError(t, err, "policy: negative RTT: -1ms to node 2")
	assert.Equal(t, 3*time.Millisecond, tr.Members(at(0), 0, nil)[1].RTT, "unchanged")
}
