package rolefsmprom

import (
	"cmp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/rolefsm/rolefsm"
)

// A scrape of many channels is dominated by building series: making a
// const metric builds and sorts its label pairs every time, and the
// registry then sorts every family's series by their labels. So each
// channel keeps its label pairs, built once, and series go out in the
// order the registry sorts them into, which Go's sort checks in linear
// time.

// pair is a label pair, shared by every series that carries it.
func pair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
}

// Label pairs whose values are fixed, built once.
var (
	fromPairs, toPairs, rolePairs [4]*dto.LabelPair
	signalPairs                   [16]*dto.LabelPair
	kindPairs                     = [2]*dto.LabelPair{pair("kind", "invalid_pair"), pair("kind", "signal_mismatch")}

	// transitionOrder lists the indexes of rolefsm.Counted() in the
	// order of their label values (from, signal, to), and roleOrder the
	// roles in the order of their names: the registry's order.
	transitionOrder [rolefsm.NumCounted]int
	roleOrder       []rolefsm.Role
)

func init() {
	for _, r := range rolefsm.Roles() {
		fromPairs[r], toPairs[r], rolePairs[r] = pair("from", r.String()), pair("to", r.String()), pair("role", r.String())
	}
	for _, s := range rolefsm.Signals() {
		signalPairs[s] = pair("signal", s.String())
	}
	counted := rolefsm.Counted()
	for i := range transitionOrder {
		transitionOrder[i] = i
	}
	slices.SortFunc(transitionOrder[:], func(a, b int) int {
		ta, tb := counted[a], counted[b]
		return cmp.Or(cmp.Compare(ta.From.String(), tb.From.String()),
			cmp.Compare(ta.Signal.String(), tb.Signal.String()), cmp.Compare(ta.To.String(), tb.To.String()))
	})
	roleOrder = rolefsm.Roles()
	slices.SortFunc(roleOrder, func(a, b rolefsm.Role) int { return cmp.Compare(a.String(), b.String()) })
}

// labels are one channel's label pairs, per series, sorted by label
// name (channel < from < kind < role < signal < to) as client_golang
// sorts them.
type labels struct {
	transitions [rolefsm.NumCounted][]*dto.LabelPair
	rejected    [2][]*dto.LabelPair
	plain       []*dto.LabelPair
	role        [4][]*dto.LabelPair
}

// newLabels builds a channel's label pairs, in one backing array.
func newLabels(channel string) *labels {
	ch := pair("channel", channel)
	l := &labels{}
	all := make([]*dto.LabelPair, 0, rolefsm.NumCounted*4+2*2+1+4*2)
	take := func(ps ...*dto.LabelPair) []*dto.LabelPair {
		all = append(all, ps...)
		return all[len(all)-len(ps) : len(all) : len(all)]
	}
	for i, t := range rolefsm.Counted() {
		l.transitions[i] = take(ch, fromPairs[t.From], signalPairs[t.Signal], toPairs[t.To])
	}
	for i, k := range kindPairs {
		l.rejected[i] = take(ch, k)
	}
	l.plain = take(ch)
	for _, r := range rolefsm.Roles() {
		l.role[r] = take(ch, rolePairs[r])
	}
	return l
}

// metric is one series of one scrape.
type metric struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	value   float64
	counter bool
}

func (m *metric) Desc() *prometheus.Desc { return m.desc }

// Write shares the label pairs, as client_golang's own vectors do.
func (m *metric) Write(out *dto.Metric) error {
	out.Label = m.labels
	if m.counter {
		out.Counter = &dto.Counter{Value: &m.value}
	} else {
		out.Gauge = &dto.Gauge{Value: &m.value}
	}
	return nil
}

// sample is what one channel's series report: a coordinator's counts,
// or the sum of several (the overflow channel), with roles counted.
type sample struct {
	transitions                                                         [rolefsm.NumCounted]uint64
	invalidPairs, mismatches, leaders, thrash, cold, panics, generation uint64
	roles                                                               [4]float64
}

func (s *sample) add(n rolefsm.Counts) {
	o := sample{transitions: n.Transitions, invalidPairs: n.InvalidPairs, mismatches: n.SignalMismatches,
		leaders: n.LeaderChanges, thrash: n.ElectionThrash, cold: n.ColdStarts, panics: n.ObserverPanics, generation: n.Generation}
	if n.Role.Valid() {
		o.roles[n.Role] = 1
	}
	s.merge(&o)
}

// merge adds o's counts, roles included, to s.
func (s *sample) merge(o *sample) {
	for i, k := range o.transitions {
		s.transitions[i] += k
	}
	s.invalidPairs += o.invalidPairs
	s.mismatches += o.mismatches
	s.leaders += o.leaders
	s.thrash += o.thrash
	s.cold += o.cold
	s.panics += o.panics
	s.generation += o.generation
	for r, k := range o.roles {
		s.roles[r] += k
	}
}

// maxSeries is the most series one channel sends.
const maxSeries = rolefsm.NumCounted + 2 + 4 + 4 + 1

// collect sends one channel's series, family by family, each in the
// registry's order. A transition that never fired has no series unless
// all is set.
func (d *descs) collect(ch chan<- prometheus.Metric, s *sample, l *labels, all bool) {
	ms := make([]metric, 0, maxSeries) // one allocation for the channel's series
	send := func(desc *prometheus.Desc, lp []*dto.LabelPair, v float64, counter bool) {
		ms = append(ms, metric{desc: desc, labels: lp, value: v, counter: counter})
		ch <- &ms[len(ms)-1]
	}
	for _, i := range transitionOrder {
		if all || s.transitions[i] > 0 {
			send(d.transitions, l.transitions[i], float64(s.transitions[i]), true)
		}
	}
	send(d.rejected, l.rejected[0], float64(s.invalidPairs), true)
	send(d.rejected, l.rejected[1], float64(s.mismatches), true)
	send(d.leaderChanges, l.plain, float64(s.leaders), true)
	send(d.thrash, l.plain, float64(s.thrash), true)
	send(d.coldStarts, l.plain, float64(s.cold), true)
	send(d.panics, l.plain, float64(s.panics), true)
	for _, r := range roleOrder {
		send(d.role, l.role[r], s.roles[r], false)
	}
	send(d.generation, l.plain, float64(s.generation), false)
}
