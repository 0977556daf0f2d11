package rolefsmotel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// Errors of Set.Add.
var (
	// ErrUnnamedChannel is returned for a coordinator without a name:
	// its points would collide with every other unnamed one's.
	ErrUnnamedChannel = errors.New("rolefsmotel: a coordinator needs a name (rolefsm.WithName) to be exported")
	// ErrDuplicateChannel is returned for a second coordinator of a name.
	ErrDuplicateChannel = errors.New("rolefsmotel: a coordinator of that name is exported already")
)

// Set exports any number of coordinators through one callback. Add and
// Remove may be called from any goroutine, also while the SDK collects.
type Set struct {
	reg metric.Registration

	mu     sync.Mutex
	coords map[string]*rolefsm.Coordinator

	transitions, rejected, leaders, thrash, cold, panics metric.Int64ObservableCounter
	role, generation                                     metric.Int64ObservableGauge
}

// NewSet creates the coordinators' instruments on meter and registers
// their callback. Close unregisters it.
func NewSet(meter metric.Meter) (*Set, error) {
	s := &Set{coords: map[string]*rolefsm.Coordinator{}}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	s.transitions = counter("rolefsm.transitions", "{transition}", "Committed role transitions, per permitted (from, to, signal) triple.")
	s.rejected = counter("rolefsm.rejected_transitions", "{attempt}", "Rejected transition attempts, by error kind.")
	s.leaders = counter("rolefsm.leader_changes", "{transition}", "Entries into the Leader role.")
	s.thrash = counter("rolefsm.election_thrash", "{election}", "Committed MissedHeartbeats transitions of a channel that had a leader.")
	s.cold = counter("rolefsm.cold_start_elections", "{election}", "Committed MissedHeartbeats transitions of a channel with no leader since it opened.")
	s.panics = counter("rolefsm.observer_panics", "{panic}", "Panics recovered from observers and the audit log handler.")
	s.role = gauge("rolefsm.role", "1", "1 for the channel's current role, 0 for the others.")
	s.generation = gauge("rolefsm.generation", "{transition}", "Committed transitions so far: the fencing generation.")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("rolefsmotel: %w", err)
	}
	reg, err := meter.RegisterCallback(s.observe, s.transitions, s.rejected, s.leaders, s.thrash, s.cold, s.panics, s.role, s.generation)
	if err != nil {
		return nil, fmt.Errorf("rolefsmotel: %w", err)
	}
	s.reg = reg
	return s, nil
}

// Add exports c under its name. It refuses an unnamed coordinator and a
// second one of a name, and changes nothing then.
func (s *Set) Add(c *rolefsm.Coordinator) error {
	name := c.Name()
	if name == "" {
		return ErrUnnamedChannel
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.coords[name]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicateChannel, name)
	}
	s.coords[name] = c
	return nil
}

// Remove stops exporting c; a coordinator the set does not hold is
// ignored.
func (s *Set) Remove(c *rolefsm.Coordinator) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.coords[c.Name()] == c {
		delete(s.coords, c.Name())
	}
}

// Close unregisters the set's callback.
func (s *Set) Close() error { return s.reg.Unregister() }

var roles = []rolefsm.Role{rolefsm.Idle, rolefsm.Replica, rolefsm.Candidate, rolefsm.Leader}

func (s *Set) observe(_ context.Context, o metric.Observer) error {
	s.mu.Lock()
	coords := make([]*rolefsm.Coordinator, 0, len(s.coords))
	for _, c := range s.coords {
		coords = append(coords, c)
	}
	s.mu.Unlock()
	counted := rolefsm.Counted()
	for _, c := range coords {
		n := c.Counts()
		ch := attribute.String("channel", c.Name())
		for i, k := range n.Transitions {
			if k == 0 {
				continue // a triple that never fired has no point, as in rolefsmprom
			}
			t := counted[i]
			o.ObserveInt64(s.transitions, int64(k), metric.WithAttributes(ch,
				attribute.String("from", t.From.String()), attribute.String("to", t.To.String()), attribute.String("signal", t.Signal.String())))
		}
		o.ObserveInt64(s.rejected, int64(n.InvalidPairs), metric.WithAttributes(ch, attribute.String("kind", "invalid_pair")))
		o.ObserveInt64(s.rejected, int64(n.SignalMismatches), metric.WithAttributes(ch, attribute.String("kind", "signal_mismatch")))
		one := metric.WithAttributes(ch)
		o.ObserveInt64(s.leaders, int64(n.LeaderChanges), one)
		o.ObserveInt64(s.thrash, int64(n.ElectionThrash), one)
		o.ObserveInt64(s.cold, int64(n.ColdStarts), one)
		o.ObserveInt64(s.panics, int64(n.ObserverPanics), one)
		o.ObserveInt64(s.generation, int64(n.Generation), one)
		for _, r := range roles {
			v := int64(0)
			if n.Role == r {
				v = 1
			}
			o.ObserveInt64(s.role, v, metric.WithAttributes(ch, attribute.String("role", r.String())))
		}
	}
	return nil
}

// RegisterTransport creates a transport's instruments on meter and
// registers their callback; unregister it with the Registration.
func RegisterTransport(meter metric.Meter, t *udp.Transport) (metric.Registration, error) {
	if t == nil {
		return nil, errors.New("rolefsmotel: RegisterTransport was given a nil Transport")
	}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	datagrams := counter("rolefsm.transport.datagrams", "{datagram}", "Datagrams sent, and read from the socket (dropped or not).")
	bytes := counter("rolefsm.transport.bytes", "By", "Bytes sent and read from the socket, in datagrams.")
	kernel := counter("rolefsm.transport.kernel_drops", "{datagram}", "Datagrams the kernel dropped because the socket's buffer was full.")
	handshakes := counter("rolefsm.transport.handshakes", "{handshake}", "Handshakes: initiations sent, initiations answered, and ours completed.")
	duplicates := counter("rolefsm.transport.duplicate_identity", "{event}", "Times two processes were found speaking with one node's key.")
	dropped := counter("rolefsm.transport.dropped", "{datagram}", "Datagrams dropped and never acted on, by reason.")
	delivered := counter("rolefsm.transport.peer.delivered", "{batch}", "The peer's batches delivered.")
	auth := counter("rolefsm.transport.peer.auth_failures", "{datagram}", "Datagrams from the peer's configured address that failed authentication.")
	session, err := meter.Int64ObservableGauge("rolefsm.transport.peer.session", metric.WithUnit("1"),
		metric.WithDescription("1 while a session with the peer is up (without keys: once it was heard)."))
	errs = append(errs, err)
	insecure, err := meter.Int64ObservableGauge("rolefsm.transport.insecure", metric.WithUnit("1"),
		metric.WithDescription("1 if the transport runs without keys: unauthenticated, in the clear."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("rolefsmotel: %w", err)
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := t.Stats()
		o.ObserveInt64(datagrams, int64(st.DatagramsSent), metric.WithAttributes(attribute.String("direction", "sent")))
		o.ObserveInt64(datagrams, int64(st.DatagramsReceived), metric.WithAttributes(attribute.String("direction", "received")))
		o.ObserveInt64(bytes, int64(st.BytesSent), metric.WithAttributes(attribute.String("direction", "sent")))
		o.ObserveInt64(bytes, int64(st.BytesReceived), metric.WithAttributes(attribute.String("direction", "received")))
		o.ObserveInt64(kernel, int64(st.KernelDrops))
		o.ObserveInt64(handshakes, int64(st.HandshakesSent), metric.WithAttributes(attribute.String("kind", "sent")))
		o.ObserveInt64(handshakes, int64(st.HandshakesAnswered), metric.WithAttributes(attribute.String("kind", "answered")))
		o.ObserveInt64(handshakes, int64(st.HandshakesCompleted), metric.WithAttributes(attribute.String("kind", "completed")))
		o.ObserveInt64(duplicates, int64(st.DuplicateIdentity))
		in := int64(0)
		if st.Insecure {
			in = 1
		}
		o.ObserveInt64(insecure, in)
		for _, r := range udp.Reasons() {
			o.ObserveInt64(dropped, int64(st.Dropped[r]), metric.WithAttributes(attribute.String("reason", r.String())))
		}
		for _, p := range t.Peers() {
			peer := metric.WithAttributes(attribute.String("peer", strconv.FormatUint(uint64(p.ID), 10)))
			up := int64(0)
			if p.Session {
				up = 1
			}
			o.ObserveInt64(session, up, peer)
			o.ObserveInt64(delivered, int64(p.Delivered), peer)
			o.ObserveInt64(auth, int64(p.Dropped[udp.BadTag]), peer)
		}
		return nil
	}, datagrams, bytes, kernel, handshakes, duplicates, dropped, delivered, auth, session, insecure)
	if err != nil {
		return nil, fmt.Errorf("rolefsmotel: %w", err)
	}
	return reg, nil
}
