package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestMeasure: stands but cold starts, elections won, and the spans
// with two Leaders on a channel, clipped to the window.
func TestMeasure(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	evs := []event{
		{at: at(0), node: 1, channel: "a", from: "Replica", to: "Candidate", signal: "MissedHeartbeats", cold: true},
		{at: at(10), node: 1, channel: "a", from: "Candidate", to: "Leader", signal: "ElectionWon"},
		// In the window [100, 1000]: node 2 stands and wins: two
		// Leaders from 300 until node 1 concedes at 450.
		{at: at(200), node: 2, channel: "a", from: "Replica", to: "Candidate", signal: "MissedHeartbeats"},
		{at: at(300), node: 2, channel: "a", from: "Candidate", to: "Leader", signal: "ElectionWon"},
		{at: at(450), node: 1, channel: "a", from: "Leader", to: "Replica", signal: "PeerLeaderObserved"},
		// On b, two Leaders from 900 to past the window's end: clipped.
		{at: at(50), node: 1, channel: "b", from: "Candidate", to: "Leader", signal: "ElectionWon"},
		{at: at(900), node: 3, channel: "b", from: "Candidate", to: "Leader", signal: "ElectionWon"},
		{at: at(1200), node: 1, channel: "b", from: "Leader", to: "Replica", signal: "PeerLeaderObserved"},
	}
	r := measure(evs, at(100), at(1000))
	assert.Equal(t, result{stands: 1, won: 2, episodes: 2, dual: 250 * time.Millisecond, longest: 150 * time.Millisecond}, r)
}

func TestMedianAndVerdict(t *testing.T) {
	m := median([]result{{stands: 9}, {stands: 1}, {stands: 4}})
	assert.Equal(t, 4, m.stands)
	assert.False(t, verdict("cut", result{stands: 27}, result{}))
	assert.True(t, verdict("cut", result{stands: 27}, result{stands: 1}), "one stand under a cut fails")
	assert.True(t, verdict("cut", result{stands: 0}, result{}), "a rig that cuts nothing fails")
	// Loss is measured, not checked: over a short run the two rules'
	// stands cross by chance (verdict's comment).
	assert.False(t, verdict("loss", result{stands: 10}, result{stands: 10}))
	assert.False(t, verdict("flap", result{}, result{stands: 10}))
}
