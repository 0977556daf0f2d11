// Package rolefsmprom exports rolefsm coordinators' stats as Prometheus
// metrics.
//
// The collectors read Coordinator.Counts at scrape time: there is no
// second set of counters to keep in step. Every series carries the
// coordinator's name (rolefsm.WithName) as the channel label.
//
//	rolefsm_transitions_total{channel,from,to,signal}   committed transitions, per triple that has fired (every counted triple with WithAllTransitions)
//	rolefsm_rejected_transitions_total{channel,kind}    rejected attempts: kind="invalid_pair" or "signal_mismatch"
//	rolefsm_leader_changes_total{channel}               entries into Leader
//	rolefsm_election_thrash_total{channel}              committed MissedHeartbeats transitions of a channel that had a leader
//	rolefsm_cold_start_elections_total{channel}         committed MissedHeartbeats transitions marked rolefsm.ColdStart: first elections
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
	"runtime"
	"slices"
	"strings"
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
	namespace      string
	maxChannels    int
	allTransitions bool
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

// WithAllTransitions makes rolefsm_transitions_total carry a series
// for every counted triple from the first scrape, at 0, as Prometheus
// advises for known label sets (a rate then sees a triple's first
// commit). Without it, a triple's series appears once it has fired:
// 12 series a channel fewer, which at thousands of channels is most of
// a scrape. The other metrics always carry every series.
func WithAllTransitions() Option { return func(o *options) { o.allTransitions = true } }

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
	transitions, rejected, leaderChanges, thrash, coldStarts, panics, role, generation *prometheus.Desc
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
		thrash:        d("election_thrash_total", "Committed MissedHeartbeats transitions of a channel that had a leader: the leader was lost."),
		coldStarts:    d("cold_start_elections_total", "Committed MissedHeartbeats transitions of a channel with no leader since it opened: first elections, not thrash."),
		panics:        d("observer_panics_total", "Panics recovered from observers and the audit log handler."),
		role:          d("role", "1 for the channel's current role, 0 for the others.", "role"),
		generation:    d("generation", "Committed transitions so far: the fencing generation."),
	}
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.transitions, d.rejected, d.leaderChanges, d.thrash, d.coldStarts, d.panics, d.role, d.generation} {
		ch <- x
	}
}

// collector exports one coordinator.
type collector struct {
	c   *rolefsm.Coordinator
	d   *descs
	l   *labels
	all bool
}

// errNilCoordinator is what a collector of a nil coordinator reports
// at registration and at every scrape.
var errNilCoordinator = errors.New("rolefsmprom: NewCollector was given a nil Coordinator")

// ErrUnnamedChannel is returned by Set.Add, and by Register for a
// collector from NewCollector, for a coordinator without a name
// (rolefsm.WithName): its series would carry channel="" and collide
// with every other unnamed one.
var ErrUnnamedChannel = errors.New(`rolefsmprom: the coordinator has no name (give it one with rolefsm.WithName): its series would carry channel=""`)

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
	return &collector{c: c, d: newDescs(o.namespace, prometheus.Labels{"channel": name}, nil), l: newLabels(name), all: o.allTransitions}
}

// invalid is why the collector cannot export its coordinator, or nil.
func (x *collector) invalid() error {
	switch {
	case x.c == nil:
		return errNilCoordinator
	case x.c.Name() == "":
		return ErrUnnamedChannel
	}
	return nil
}

// Describe implements prometheus.Collector; for a nil or unnamed
// coordinator it describes the error, which Register returns.
func (x *collector) Describe(ch chan<- *prometheus.Desc) {
	if err := x.invalid(); err != nil {
		ch <- prometheus.NewInvalidDesc(err)
		return
	}
	x.d.describe(ch)
}

// Collect implements prometheus.Collector; for a nil or unnamed
// coordinator every scrape fails with the error.
func (x *collector) Collect(ch chan<- prometheus.Metric) {
	if err := x.invalid(); err != nil {
		ch <- prometheus.NewInvalidMetric(x.d.generation, err)
		return
	}
	var s sample
	s.add(x.c.Counts())
	x.d.collect(ch, &s, x.l, x.all)
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
	all bool

	mu  sync.Mutex
	own map[string]*entry // channels with series of their own
	// folded are the coordinators folded into the overflow, in the
	// order they were added (for a scrape that walks them as they lie
	// in memory), and foldedAt each one's index.
	folded         []*rolefsm.Coordinator
	foldedAt       map[*rolefsm.Coordinator]int
	names          map[string]struct{} // every channel name in the set
	overflowLabels *labels
	// sorted is own's entries and the overflow's (a nil coordinator)
	// in the order of their names, rebuilt by the first scrape after a
	// change.
	sorted []*entry
	dirty  bool
}

// entry is one channel with series of its own, or the overflow.
type entry struct {
	c      *rolefsm.Coordinator // nil for the overflow
	name   string
	labels *labels
}

// NewSet returns an empty Set.
func NewSet(opts ...Option) *Set {
	o := newOptions(opts)
	return &Set{
		d:              newDescs(o.namespace, nil, []string{"channel"}),
		max:            o.maxChannels,
		all:            o.allTransitions,
		own:            make(map[string]*entry),
		foldedAt:       make(map[*rolefsm.Coordinator]int),
		names:          make(map[string]struct{}),
		overflowLabels: newLabels(OverflowChannel),
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
	if name == "" {
		return false, ErrUnnamedChannel
	}
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
		s.own[name] = &entry{c: c, name: name, labels: newLabels(name)}
		s.dirty = true
		return true, nil
	}
	s.foldedAt[c] = len(s.folded)
	s.folded = append(s.folded, c)
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
	if e := s.own[name]; e != nil && e.c == c {
		delete(s.own, name)
		delete(s.names, name)
		s.dirty = true
		return true
	}
	if i, ok := s.foldedAt[c]; ok {
		last := len(s.folded) - 1
		s.folded[i] = s.folded[last]
		s.foldedAt[s.folded[i]] = i
		s.folded[last] = nil
		s.folded = s.folded[:last]
		delete(s.foldedAt, c)
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
// counts outside the set's lock, and sends the channels in the order of
// their names.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	if s.dirty || s.sorted == nil {
		s.sorted = s.sorted[:0]
		for _, e := range s.own {
			s.sorted = append(s.sorted, e)
		}
		s.sorted = append(s.sorted, &entry{name: OverflowChannel, labels: s.overflowLabels})
		slices.SortFunc(s.sorted, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
		s.dirty = false
	}
	channels := slices.Clone(s.sorted)
	folded := slices.Clone(s.folded)
	s.mu.Unlock()

	for _, e := range channels {
		var x sample
		switch {
		case e.c != nil:
			x.add(e.c.Counts())
		case len(folded) == 0:
			continue // no overflow, no series
		default:
			x = sum(folded)
		}
		s.d.collect(ch, &x, e.labels, s.all)
	}
}

// sum adds up the counts of cs. Reading many coordinators is bound by
// memory latency (each is a cache miss), so a large overflow is read by
// several goroutines at once, each summing a share.
func sum(cs []*rolefsm.Coordinator) sample {
	parts := min(runtime.GOMAXPROCS(0), 8, len(cs)/parallelSum)
	if parts < 2 {
		var x sample
		for _, c := range cs {
			x.add(c.Counts())
		}
		return x
	}
	shares := make([]sample, parts)
	var wg sync.WaitGroup
	for i := range shares {
		part := cs[i*len(cs)/parts : (i+1)*len(cs)/parts]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range part {
				shares[i].add(c.Counts())
			}
		}()
	}
	wg.Wait()
	var x sample
	for i := range shares {
		x.merge(&shares[i])
	}
	return x
}

// parallelSum is the fewest coordinators a goroutine of sum reads.
const parallelSum = 4096
