package rolefsmprom

import (
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// NewTransportCollector exports a UDP transport's counters, read at
// scrape time from t.Stats:
//
//	rolefsm_transport_datagrams_sent_total
//	rolefsm_transport_datagrams_received_total   every datagram read, dropped or not
//	rolefsm_transport_bytes_sent_total
//	rolefsm_transport_bytes_received_total
//	rolefsm_transport_dropped_total{reason}      datagrams dropped, one series per udp.Reason
//	rolefsm_transport_kernel_drops_total         datagrams the kernel dropped for a full socket buffer (Linux)
//	rolefsm_transport_handshakes_total{kind}     sent, answered, completed
//	rolefsm_transport_duplicate_identity_total   two processes found speaking with one node's key
//	rolefsm_transport_insecure                   1 if the transport runs without keys
//	rolefsm_transport_peer_session{peer}         1 while a session with the peer is up (insecure: once heard)
//	rolefsm_transport_peer_delivered_total{peer} the peer's batches delivered
//	rolefsm_transport_peer_auth_failures_total{peer}
//	                                             datagrams from the peer's address that failed authentication
//
// Every reason's series is there from the first scrape, at zero until
// a datagram is dropped for it, so that an alert on a rate sees it
// start.
func NewTransportCollector(t *udp.Transport, opts ...Option) prometheus.Collector {
	o := newOptions(opts)
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, "transport", name), help, labels, nil)
	}
	return &transportCollector{t: t,
		sent:          d("datagrams_sent_total", "Datagrams sent."),
		received:      d("datagrams_received_total", "Datagrams read from the socket, dropped or not."),
		bytesSent:     d("bytes_sent_total", "Bytes sent, in datagrams."),
		bytesReceived: d("bytes_received_total", "Bytes read from the socket, in datagrams."),
		dropped:       d("dropped_total", "Datagrams dropped and never acted on, by reason.", "reason"),
		kernel:        d("kernel_drops_total", "Datagrams the kernel dropped because the socket's buffer was full."),
		handshakes:    d("handshakes_total", "Handshakes: initiations sent, initiations answered, and ours completed.", "kind"),
		duplicates:    d("duplicate_identity_total", "Times two processes were found speaking with one node's key (a peer's, or this node's)."),
		insecure:      d("insecure", "1 if the transport runs without keys: unauthenticated, in the clear."),
		peerSession:   d("peer_session", "1 while a session with the peer is up (without keys: once it was heard).", "peer"),
		peerDelivered: d("peer_delivered_total", "The peer's batches delivered.", "peer"),
		peerAuth:      d("peer_auth_failures_total", "Datagrams from the peer's configured address that failed authentication.", "peer"),
	}
}

type transportCollector struct {
	t                                                 *udp.Transport
	sent, received, bytesSent, bytesReceived, dropped *prometheus.Desc
	kernel, handshakes, duplicates, insecure          *prometheus.Desc
	peerSession, peerDelivered, peerAuth              *prometheus.Desc
}

func (x *transportCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{x.sent, x.received, x.bytesSent, x.bytesReceived, x.dropped,
		x.kernel, x.handshakes, x.duplicates, x.insecure, x.peerSession, x.peerDelivered, x.peerAuth} {
		ch <- d
	}
}

func (x *transportCollector) Collect(ch chan<- prometheus.Metric) {
	if x.t == nil {
		ch <- prometheus.NewInvalidMetric(x.sent, errors.New("rolefsmprom: NewTransportCollector was given a nil Transport"))
		return
	}
	s := x.t.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(x.sent, s.DatagramsSent)
	counter(x.received, s.DatagramsReceived)
	counter(x.bytesSent, s.BytesSent)
	counter(x.bytesReceived, s.BytesReceived)
	for _, r := range udp.Reasons() {
		counter(x.dropped, s.Dropped[r], r.String())
	}
	counter(x.kernel, s.KernelDrops)
	counter(x.handshakes, s.HandshakesSent, "sent")
	counter(x.handshakes, s.HandshakesAnswered, "answered")
	counter(x.handshakes, s.HandshakesCompleted, "completed")
	counter(x.duplicates, s.DuplicateIdentity)
	insecure := 0.0
	if s.Insecure {
		insecure = 1
	}
	ch <- prometheus.MustNewConstMetric(x.insecure, prometheus.GaugeValue, insecure)
	for _, p := range x.t.Peers() {
		id := strconv.FormatUint(uint64(p.ID), 10)
		up := 0.0
		if p.Session {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(x.peerSession, prometheus.GaugeValue, up, id)
		counter(x.peerDelivered, p.Delivered, id)
		counter(x.peerAuth, p.Dropped[udp.BadTag], id)
	}
}

// DriverErrors counts, by reason, what a replica.Driver reports through
// DriverOptions.OnError: the entries and batches the node refused, and
// the transport's send errors. Pass its Observe as OnError and register
// it:
//
//	rolefsm_node_entries_dropped_total{reason}   unknown_channel, not_in_replica_set, duplicate_entry, bad_role
//	rolefsm_node_batches_dropped_total{reason}   from_self, unknown_peer, stale
//	rolefsm_node_errors_total                    anything else (a failed send, a bad RTT)
//
// It is safe for concurrent use.
type DriverErrors struct {
	entries [len(entryReasons)]atomic.Uint64
	batches [len(batchReasons)]atomic.Uint64
	other   atomic.Uint64
	next    func(error)

	entriesDesc, batchesDesc, otherDesc *prometheus.Desc
}

// The reasons DriverErrors counts, each with the replica error it
// stands for.
var (
	entryReasons = [...]struct {
		err   error
		label string
	}{
		{replica.ErrUnknownChannel, "unknown_channel"},
		{replica.ErrNotInReplicaSet, "not_in_replica_set"},
		{replica.ErrDuplicateEntry, "duplicate_entry"},
		{replica.ErrBadRole, "bad_role"},
	}
	batchReasons = [...]struct {
		err   error
		label string
	}{
		{replica.ErrFromSelf, "from_self"},
		{replica.ErrUnknownPeer, "unknown_peer"},
		{replica.ErrStaleBatch, "stale"},
	}
)

// NewDriverErrors returns a DriverErrors. next, if not nil, receives
// every error after it is counted (to log it, say).
func NewDriverErrors(next func(error), opts ...Option) *DriverErrors {
	o := newOptions(opts)
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, "node", name), help, labels, nil)
	}
	return &DriverErrors{next: next,
		entriesDesc: d("entries_dropped_total", "Heartbeat entries the node refused, by reason.", "reason"),
		batchesDesc: d("batches_dropped_total", "Heartbeat batches the node refused whole, by reason.", "reason"),
		otherDesc:   d("errors_total", "Other errors the driver reported: failed sends, bad RTTs."),
	}
}

// Observe counts err under its reasons: each entry of a
// *replica.StepError under its own.
func (e *DriverErrors) Observe(err error) {
	if err == nil {
		return
	}
	var step *replica.StepError
	if errors.As(err, &step) {
		for _, d := range step.Dropped {
			e.countEntry(d.Err)
		}
	} else if !e.countBatch(err) {
		e.other.Add(1)
	}
	if e.next != nil {
		e.next(err)
	}
}

func (e *DriverErrors) countEntry(err error) {
	for i, r := range entryReasons {
		if errors.Is(err, r.err) {
			e.entries[i].Add(1)
			return
		}
	}
	e.other.Add(1)
}

func (e *DriverErrors) countBatch(err error) bool {
	for i, r := range batchReasons {
		if errors.Is(err, r.err) {
			e.batches[i].Add(1)
			return true
		}
	}
	return false
}

// Describe implements prometheus.Collector.
func (e *DriverErrors) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.entriesDesc
	ch <- e.batchesDesc
	ch <- e.otherDesc
}

// Collect implements prometheus.Collector; every reason's series is
// there from the first scrape.
func (e *DriverErrors) Collect(ch chan<- prometheus.Metric) {
	for i, r := range entryReasons {
		ch <- prometheus.MustNewConstMetric(e.entriesDesc, prometheus.CounterValue, float64(e.entries[i].Load()), r.label)
	}
	for i, r := range batchReasons {
		ch <- prometheus.MustNewConstMetric(e.batchesDesc, prometheus.CounterValue, float64(e.batches[i].Load()), r.label)
	}
	ch <- prometheus.MustNewConstMetric(e.otherDesc, prometheus.CounterValue, float64(e.other.Load()))
}
