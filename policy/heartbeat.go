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
	// MinInterval is the shortest heartbeat period: a shorter one is
	// raised to it.
	MinInterval = 100 * time.Millisecond
	// DefaultMissThreshold is how many heartbeat periods of silence
	// mean the leader is lost.
	DefaultMissThreshold = 3
)

// ErrBadConfig is returned by NewHeartbeat for a negative interval
// or a negative miss threshold.
var ErrBadConfig = errors.New("policy: bad heartbeat configuration")

// Heartbeat is the failure-detection rule: a peer is silent once
// MissThreshold heartbeat intervals have passed since it was last
// heard from. The zero value is the default rule (500 ms, 3 misses).
type Heartbeat struct {
	interval      time.Duration
	missThreshold int
}

// NewHeartbeat returns the rule for the given interval and miss
// threshold, normalised as upstream does: an interval of 0 means
// DefaultInterval, a positive one below MinInterval is raised to
// MinInterval, and a threshold of 0 counts as 1. A negative interval
// or threshold is an error matching ErrBadConfig.
func NewHeartbeat(interval time.Duration, missThreshold int) (Heartbeat, error) {
	if interval < 0 || missThreshold < 0 {
		return Heartbeat{}, fmt.Errorf("%w: interval %v, miss threshold %d (neither may be negative)",
			ErrBadConfig, interval, missThreshold)
	}
	if interval > 0 && interval < MinInterval {
		interval = MinInterval
	}
	if missThreshold == 0 {
		missThreshold = 1
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
