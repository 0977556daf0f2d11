// Package rolefsmprom exports rolefsm coordinators' stats as Prometheus
// metrics.
//
// The collectors read Coordinator.Stats at scrape time: there is no
// second set of counters to keep in step. Every series carries the
// coordinator's name (rolefsm.WithName) as the channel label.
//
//	rolefsm_transitions_total{channel,from,to,signal}   committed transitions, per permitted triple
//	rolefsm_rejected_transitions_total{channel,kind}    rejected attempts: kind="invalid_pair" or "signal_mismatch"
//	rolefsm_leader_changes_total{channel}               entries into Leader
//	rolefsm_election_thrash_total{channel}              committed MissedHeartbeats transitions
//	rolefsm_observer_panics_total{channel}              panics recovered from observers and the audit logger
//	rolefsm_role{channel,role}                          1 for the current role, 0 for the others
//	rolefsm_generation{channel}                         committed transitions so far (the fencing generation)
//
// NewCollector exports one coordinator; register one per channel, or
// use a Set, which exports many under one collector and caps the number
// of channels it gives series of their own.
package rolefsmprom

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rolefsm/rolefsm"
)

// DefaultNamespace prefixes every metric name unless WithNamespace
// says otherwise.
const DefaultNamespace = "rolefsm"

// DefaultMaxChannels is how many channels a Set gives series of their
// own before it folds the rest into the overflow channel; upstream caps
// its per-channel series at the same number.
const DefaultMaxChannels = 1024

// OverflowChannel is the channel label of a Set's overflow bucket. A
// coordinator with this name cannot join a Set.
const OverflowChannel = "_overflow"

// Option configures NewCollector and NewSet.
type Option func(*options)

type options struct {
	namespace   string
	maxChannels int
}

// WithNamespace replaces the "rolefsm" prefix of every metric name; an
// empty namespace leaves the names unprefixed ("transitions_total").
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithMaxChannels sets how many channels a Set exports one by one
// (DefaultMaxChannels if not given; n < 1 means 1). NewCollector
// ignores it.
func WithMaxChannels(n int) Option {
	return func(o *options) {
		if n < 1 {
			n = 1
		}
		o.maxChannels = n
	}
}

func newOptions(opts []Option) options {
	o := options{namespace: DefaultNamespace, maxChannels: DefaultMaxChannels}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// descs holds one descriptor per metric. In a single coordinator's
// collector the channel is a constant label, so that many such
// collectors register side by side; in a Set it is a variable label.
type descs struct {
	transitions, rejected, leaderChanges, thrash, panics, role, generation *prometheus.Desc
}

func newDescs(ns string, constLabels prometheus.Labels, channel []string) *descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help,
			append(append([]string(nil), channel...), labels...), constLabels)
	}
	return &descs{
		transitions:   d("transitions_total", "Committed role transitions, per permitted (from, to, signal) triple.", "from", "to", "signal"),
		rejected:      d("rejected_transitions_total", "Rejected transition attempts, by error kind.", "kind"),
		leaderChanges: d("leader_changes_total", "Entries into the Leader role."),
		thrash:        d("election_thrash_total", "Committed transitions driven by MissedHeartbeats."),
		panics:        d("observer_panics_total", "Panics recovered from observers and the audit log handler."),
		role:          d("role", "1 for the channel's current role, 0 for the others.", "role"),
		generation:    d("generation", "Committed transitions so far: the fencing generation."),
	}
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.transitions, d.rejected, d.leaderChanges, d.thrash, d.panics, d.role, d.generation} {
		ch <- x
	}
}

// counted lists the triples transitions_total reports: every permitted
// triple but the idempotent close, which never counts.
var counted = func() []rolefsm.Transition {
	var out []rolefsm.Transition
	for _, t := range rolefsm.Matrix() {
		if t.From != t.To {
			out = append(out, t)
		}
	}
	return out
}()

// sample is what one series set reports: a coordinator's stats, or the
// sum of several (the overflow bucket), with roles counted.
type sample struct {
	transitions                                                   map[rolefsm.Transition]uint64
	invalidPairs, mismatches, leaders, thrash, panics, generation uint64
	roles                                                         [4]float64
}

func (s *sample) add(st rolefsm.Stats) {
	if s.transitions == nil {
		s.transitions = make(map[rolefsm.Transition]uint64, len(st.Transitions))
	}
	for t, n := range st.Transitions {
		s.transitions[t] += n
	}
	s.invalidPairs += st.InvalidPairs
	s.mismatches += st.SignalMismatches
	s.leaders += st.LeaderChanges
	s.thrash += st.ElectionThrash
	s.panics += st.ObserverPanics
	s.generation += st.Generation
	if st.Role.Valid() {
		s.roles[st.Role]++
	}
}

func (d *descs) collect(ch chan<- prometheus.Metric, s *sample, channel []string) {
	lv := func(extra ...string) []string { return append(append([]string(nil), channel...), extra...) }
	for _, t := range counted {
		ch <- prometheus.MustNewConstMetric(d.transitions, prometheus.CounterValue, float64(s.transitions[t]),
			lv(t.From.String(), t.To.String(), t.Signal.String())...)
	}
	ch <- prometheus.MustNewConstMetric(d.rejected, prometheus.CounterValue, float64(s.invalidPairs), lv("invalid_pair")...)
	ch <- prometheus.MustNewConstMetric(d.rejected, prometheus.CounterValue, float64(s.mismatches), lv("signal_mismatch")...)
	ch <- prometheus.MustNewConstMetric(d.leaderChanges, prometheus.CounterValue, float64(s.leaders), lv()...)
	ch <- prometheus.MustNewConstMetric(d.thrash, prometheus.CounterValue, float64(s.thrash), lv()...)
	ch <- prometheus.MustNewConstMetric(d.panics, prometheus.CounterValue, float64(s.panics), lv()...)
	for _, r := range rolefsm.Roles() {
		ch <- prometheus.MustNewConstMetric(d.role, prometheus.GaugeValue, s.roles[r], lv(r.String())...)
	}
	ch <- prometheus.MustNewConstMetric(d.generation, prometheus.GaugeValue, float64(s.generation), lv()...)
}

// collector exports one coordinator.
type collector struct {
	c *rolefsm.Coordinator
	d *descs
}

// errNilCoordinator is what a collector of a nil coordinator reports
// at every scrape.
var errNilCoordinator = errors.New("rolefsmprom: NewCollector was given a nil Coordinator")

// NewCollector returns a collector that exports c's stats, read at
// scrape time, with c's name as the constant channel label. Collectors
// of coordinators with different names register side by side in one
// registry; two with the same name collide, and Register says so. A nil
// c does not panic: every scrape of its collector fails with an error
// that says why.
func NewCollector(c *rolefsm.Coordinator, opts ...Option) prometheus.Collector {
	o := newOptions(opts)
	name := ""
	if c != nil {
		name = c.Name()
	}
	return &collector{c: c, d: newDescs(o.namespace, prometheus.Labels{"channel": name}, nil)}
}

func (x *collector) Describe(ch chan<- *prometheus.Desc) { x.d.describe(ch) }

func (x *collector) Collect(ch chan<- prometheus.Metric) {
	if x.c == nil {
		ch <- prometheus.NewInvalidMetric(x.d.generation, errNilCoordinator)
		return
	}
	var s sample
	s.add(x.c.Stats())
	x.d.collect(ch, &s, nil)
}

// Set exports many coordinators through one collector, with the channel
// as a variable label. The first MaxChannels coordinators added get
// series of their own; the ones added after that are folded into the
// channel OverflowChannel, whose counters are sums and whose role gauge
// counts the folded coordinators in each role. So the number of series
// stays bounded however many channels a process opens. A Set is safe for
// concurrent use.
//
// Removing a coordinator drops its series (or its share of the overflow
// sums, which Prometheus then reads as a counter reset) and frees its
// slot for the next Add; folded coordinators are not promoted, so a
// channel's series never change identity.
type Set struct {
	d   *descs
	max int

	mu       sync.Mutex
	own      map[string]*rolefsm.Coordinator // channels with series of their own
	overflow map[*rolefsm.Coordinator]struct{}
	names    map[string]struct{} // every channel name in the set
}

// NewSet returns an empty Set.
func NewSet(opts ...Option) *Set {
	o := newOptions(opts)
	return &Set{
		d:        newDescs(o.namespace, nil, []string{"channel"}),
		max:      o.maxChannels,
		own:      make(map[string]*rolefsm.Coordinator),
		overflow: make(map[*rolefsm.Coordinator]struct{}),
		names:    make(map[string]struct{}),
	}
}

// Errors returned by Set.Add.
var (
	// ErrDuplicateChannel: a coordinator with that name is already in
	// the set; two would report the same series.
	ErrDuplicateChannel = errors.New("rolefsmprom: duplicate channel")
	// ErrReservedChannel: the name is OverflowChannel.
	ErrReservedChannel = errors.New("rolefsmprom: reserved channel name")
)

// Add starts exporting c. It reports whether c got series of its own
// (false: it is folded into the overflow channel).
func (s *Set) Add(c *rolefsm.Coordinator) (own bool, err error) {
	if c == nil {
		return false, errors.New("rolefsmprom: Add: nil Coordinator")
	}
	name := c.Name()
	if name == OverflowChannel {
		return false, fmt.Errorf("%w: %q", ErrReservedChannel, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.names[name]; dup {
		return false, fmt.Errorf("%w: %q", ErrDuplicateChannel, name)
	}
	s.names[name] = struct{}{}
	if len(s.own) < s.max {
		s.own[name] = c
		return true, nil
	}
	s.overflow[c] = struct{}{}
	return false, nil
}

// Remove stops exporting c and reports whether it was in the set.
func (s *Set) Remove(c *rolefsm.Coordinator) bool {
	if c == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := c.Name()
	if s.own[name] == c {
		delete(s.own, name)
		delete(s.names, name)
		return true
	}
	if _, ok := s.overflow[c]; ok {
		delete(s.overflow, c)
		delete(s.names, name)
		return true
	}
	return false
}

// Len returns how many coordinators the set exports, folded ones
// included.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.names)
}

// Describe implements prometheus.Collector.
func (s *Set) Describe(ch chan<- *prometheus.Desc) { s.d.describe(ch) }

// Collect implements prometheus.Collector. It reads every coordinator's
// Stats outside the set's lock.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	own := make([]*rolefsm.Coordinator, 0, len(s.own))
	for _, c := range s.own {
		own = append(own, c)
	}
	folded := make([]*rolefsm.Coordinator, 0, len(s.overflow))
	for c := range s.overflow {
		folded = append(folded, c)
	}
	s.mu.Unlock()

	for _, c := range own {
		var x sample
		x.add(c.Stats())
		s.d.collect(ch, &x, []string{c.Name()})
	}
	if len(folded) > 0 {
		var x sample
		for _, c := range folded {
			x.add(c.Stats())
		}
		s.d.collect(ch, &x, []string{OverflowChannel})
	}
}
