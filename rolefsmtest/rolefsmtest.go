// Package rolefsmtest helps a service test its use of rolefsm with
// testify: a Recorder that keeps every record a coordinator delivers,
// assertions whose failures read well (the role, the chain of signals,
// the counters), and a Cluster of replica nodes on a fake clock that a
// test can stop, partition and heal, and wait on for one leader per
// channel without sleeping.
package rolefsmtest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/stretchr/testify/assert"

	"github.com/rolefsm/rolefsm"
)

// Recorder keeps every record delivered to its observer, in order. It
// is safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	recs []rolefsm.Record
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Option is the rolefsm.WithObserver option that records into r; one
// Recorder may serve many coordinators (Record.Name tells them apart).
func (r *Recorder) Option() rolefsm.Option {
	return rolefsm.WithObserver(func(_ context.Context, rec rolefsm.Record) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.recs = append(r.recs, rec)
	})
}

// Records returns a copy of every record so far.
func (r *Recorder) Records() []rolefsm.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rolefsm.Record(nil), r.recs...)
}

// Committed returns the committed records of channel (every channel
// if it is empty).
func (r *Recorder) Committed(channel string) []rolefsm.Record {
	return r.filter(channel, func(rec rolefsm.Record) bool { return rec.Err == nil })
}

// Rejected returns the rejected records of channel (every channel if
// it is empty).
func (r *Recorder) Rejected(channel string) []rolefsm.Record {
	return r.filter(channel, func(rec rolefsm.Record) bool { return rec.Err != nil })
}

func (r *Recorder) filter(channel string, keep func(rolefsm.Record) bool) []rolefsm.Record {
	var out []rolefsm.Record
	for _, rec := range r.Records() {
		if (channel == "" || rec.Name == channel) && keep(rec) {
			out = append(out, rec)
		}
	}
	return out
}

// Signals returns the signals of channel's committed records, in order.
func (r *Recorder) Signals(channel string) []rolefsm.Signal {
	var out []rolefsm.Signal
	for _, rec := range r.Committed(channel) {
		out = append(out, rec.Signal)
	}
	return out
}

// Reset forgets every record.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = nil
}

// AssertRole asserts that c is in role want; a failure names the
// channel, the role it is in and its generation.
func AssertRole(t assert.TestingT, c *rolefsm.Coordinator, want rolefsm.Role, msgAndArgs ...any) bool {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	l := c.Lease()
	if l.Role == want {
		return true
	}
	return assert.Fail(t, fmt.Sprintf("channel %q is %v (generation %d), want %v", c.Name(), l.Role, l.Generation, want), msgAndArgs...)
}

// AssertSignals asserts that channel's committed records carry exactly
// the signals want, in order; a failure shows both chains.
func AssertSignals(t assert.TestingT, r *Recorder, channel string, want ...rolefsm.Signal) bool {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	got := r.Signals(channel)
	if chain(got) == chain(want) {
		return true
	}
	return assert.Fail(t, fmt.Sprintf("channel %q committed\n\t%s\nwant\n\t%s", channel, chain(got), chain(want)))
}

func chain(sigs []rolefsm.Signal) string {
	if len(sigs) == 0 {
		return "(nothing)"
	}
	s := make([]string, len(sigs))
	for i, sig := range sigs {
		s[i] = sig.String()
	}
	return strings.Join(s, " → ")
}

// Counters are the counters AssertCounters compares.
type Counters struct {
	Generation, LeaderChanges, ElectionThrash, InvalidPairs, SignalMismatches, ObserverPanics uint64
}

// AssertCounters asserts c's counters; a failure lists each one that
// differs.
func AssertCounters(t assert.TestingT, c *rolefsm.Coordinator, want Counters, msgAndArgs ...any) bool {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	n := c.Counts()
	got := Counters{n.Generation, n.LeaderChanges, n.ElectionThrash, n.InvalidPairs, n.SignalMismatches, n.ObserverPanics}
	if got == want {
		return true
	}
	var diffs []string
	for _, d := range []struct {
		name string
		g, w uint64
	}{
		{"generation", got.Generation, want.Generation},
		{"leader changes", got.LeaderChanges, want.LeaderChanges},
		{"election thrash", got.ElectionThrash, want.ElectionThrash},
		{"invalid pairs", got.InvalidPairs, want.InvalidPairs},
		{"signal mismatches", got.SignalMismatches, want.SignalMismatches},
		{"observer panics", got.ObserverPanics, want.ObserverPanics},
	} {
		if d.g != d.w {
			diffs = append(diffs, fmt.Sprintf("%s %d, want %d", d.name, d.g, d.w))
		}
	}
	return assert.Fail(t, fmt.Sprintf("channel %q: %s", c.Name(), strings.Join(diffs, "; ")), msgAndArgs...)
}
