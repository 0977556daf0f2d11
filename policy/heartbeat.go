package policy

import (
	"errors"
	"fmt"
	"time"
)

// Heartbeat defaults and limits, as upstream.
const (
	// DefaultInterval is the heartbeat period used when none is given.
	DefaultInterval = 500 * time.Millisecond
	// MinInterval is the shortest heartbeat period NewHeartbeat
	// accepts.
	MinInterval = 100 * time.Millisecond
	// DefaultMissThreshold is how many heartbeat periods of silence
	// mean the leader is lost.
	DefaultMissThreshold = 3
)

// ErrBadConfig is returned by NewHeartbeat for an interval or a miss
// threshold it refuses.
var ErrBadConfig = errors.New("policy: bad heartbeat configuration")

// Heartbeat is the failure-detection rule: a peer is silent once
// MissThreshold heartbeat intervals have passed since it was last
// heard from. The zero value is the default rule (500 ms, 3 misses).
type Heartbeat struct {
	interval      time.Duration
	missThreshold int
}

// NewHeartbeat returns the rule for the given interval and miss
// threshold. Zero means the default for each, as in the zero Heartbeat:
// DefaultInterval and DefaultMissThreshold, so NewHeartbeat(0, 0) is
// Heartbeat{}. A negative value, or a positive interval below
// MinInterval, is an error matching ErrBadConfig: nothing is raised or
// clamped, so the timeout is the one the caller asked for. (Upstream
// raises a short interval to the minimum and counts a threshold of 0 as
// 1, a setting bench/sim-grid.sh shows unsafe; no caller here needs
// that, so it is not offered.) A threshold of 1 is accepted but is not
// safe under jitter: see docs/simulation.md.
func NewHeartbeat(interval time.Duration, missThreshold int) (Heartbeat, error) {
	switch {
	case interval < 0 || missThreshold < 0:
		return Heartbeat{}, fmt.Errorf("%w: interval %v, miss threshold %d (neither may be negative)",
			ErrBadConfig, interval, missThreshold)
	case interval > 0 && interval < MinInterval:
		return Heartbeat{}, fmt.Errorf("%w: interval %v, at least %v (0 for the default, %v)",
			ErrBadConfig, interval, MinInterval, DefaultInterval)
	}
	return Heartbeat{interval: interval, missThreshold: missThreshold}, nil
}

// Interval returns the heartbeat period.
func (h Heartbeat) Interval() time.Duration {
	if h.interval == 0 {
		return DefaultInterval
	}
	return h.interval
}

// MissThreshold returns how many silent periods mean a peer is lost.
func (h Heartbeat) MissThreshold() int {
	if h.missThreshold == 0 {
		return DefaultMissThreshold
	}
	return h.missThreshold
}

// Timeout returns MissThreshold × Interval: the silence after which a
// peer is lost. It saturates instead of overflowing.
func (h Heartbeat) Timeout() time.Duration {
	iv, n := h.Interval(), time.Duration(h.MissThreshold())
	if iv > maxDuration/n {
		return maxDuration
	}
	return iv * n
}

const maxDuration = time.Duration(1<<63 - 1)

// Silent reports whether a peer last heard from at lastSeen counts as
// lost at now: now - lastSeen >= Timeout. Time is passed in; the rule
// never reads a clock.
func (h Heartbeat) Silent(lastSeen, now time.Time) bool {
	return h.Expired(now.Sub(lastSeen))
}

// Expired reports whether a silence that has lasted d means the peer is
// lost: d >= Timeout.
func (h Heartbeat) Expired(d time.Duration) bool { return d >= h.Timeout() }
