// Package udpproxy injects network faults between UDP processes on
// loopback, in user space: no root, no netem. For every pair of nodes it
// opens two front sockets, one each node sends to instead of the other
// (Proxy.Addr), and relays each datagram to the other node's real
// address from the other front, so that each node sees its peer at the
// address it was given. On the way, per direction, a datagram may be
// lost, delayed (with jitter), or dropped by a cut that is steady or
// flaps. It is bounded: at most MaxInFlight datagrams wait in delays at
// once (the rest are dropped and counted), and it binds only loopback
// addresses. bench/faults.sh and cmd/rolefsm's fault test run on it.
package udpproxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rolefsm/rolefsm/replica"
)

// MaxInFlight bounds the datagrams held in delays at once.
const MaxInFlight = 4096

// MaxDelay bounds a Fault's Delay plus Jitter.
const MaxDelay = 10 * time.Second

// ErrBadConfig is matched by every error New and Set return for what
// they refuse.
var ErrBadConfig = errors.New("udpproxy: bad configuration")

// Fault is what happens to the datagrams one way between two nodes.
// The zero Fault relays every datagram at once.
type Fault struct {
	// Loss is the share of datagrams dropped, 0 to 1.
	Loss float64
	// Delay holds each datagram back, plus up to Jitter more, uniform.
	Delay, Jitter time.Duration
	// Cut drops every datagram.
	Cut bool
	// Down and Up, both set, flap the direction: cut for Down, then
	// intact for Up, and again, from when the Fault was set.
	Down, Up time.Duration
}

func (f Fault) check() error {
	switch {
	case f.Loss < 0 || f.Loss > 1 || f.Loss != f.Loss:
		return fmt.Errorf("%w: loss %v, want 0 to 1", ErrBadConfig, f.Loss)
	case f.Delay < 0 || f.Jitter < 0 || f.Delay > MaxDelay || f.Jitter > MaxDelay-f.Delay:
		return fmt.Errorf("%w: delay %v and jitter %v, want each at least 0 and both at most %v", ErrBadConfig, f.Delay, f.Jitter, MaxDelay)
	case f.Down < 0 || f.Up < 0 || (f.Down > 0) != (f.Up > 0):
		return fmt.Errorf("%w: flapping %v down, %v up: give both, above 0, or neither", ErrBadConfig, f.Down, f.Up)
	}
	return nil
}

// Stats counts one direction's datagrams.
type Stats struct {
	Relayed, Lost, Cut, Overflow uint64
}

// Config configures a Proxy.
type Config struct {
	// Nodes are the nodes' real UDP addresses, on loopback.
	Nodes map[replica.NodeID]string
	// Seed seeds the losses and jitter.
	Seed uint64
	// Now is the clock flapping is measured on (default time.Now).
	Now func() time.Time

	decided func() // for the tests: after each datagram's fate is set
}

// Proxy relays between the nodes of its Config. It is safe for
// concurrent use.
type Proxy struct {
	now     func() time.Time
	decided func()
	nodes   map[replica.NodeID]netip.AddrPort
	// fronts[{from, to}] is where from sends to reach to.
	fronts map[link]*front
	wg     sync.WaitGroup

	mu       sync.Mutex
	rng      *rand.Rand
	faults   map[link]Fault
	since    map[link]time.Time
	stats    map[link]*Stats
	inFlight int
	timers   map[*time.Timer]struct{}
	closed   bool
}

type link struct{ from, to replica.NodeID }

// front is one socket of a pair: from sends to it, and what to sends
// from comes out of it.
type front struct {
	l    link
	conn *net.UDPConn
	peer *front // the pair's other socket
}

// New opens the fronts, two per pair of nodes, on 127.0.0.1, and starts
// relaying. A node address that is not loopback is refused.
func New(cfg Config) (*Proxy, error) {
	if len(cfg.Nodes) < 2 {
		return nil, fmt.Errorf("%w: %d nodes, want at least 2", ErrBadConfig, len(cfg.Nodes))
	}
	p := &Proxy{now: cfg.Now, decided: cfg.decided, nodes: map[replica.NodeID]netip.AddrPort{}, fronts: map[link]*front{},
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), faults: map[link]Fault{},
		since: map[link]time.Time{}, stats: map[link]*Stats{}, timers: map[*time.Timer]struct{}{}}
	if p.now == nil {
		p.now = time.Now
	}
	for id, a := range cfg.Nodes {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return nil, fmt.Errorf("%w: node %d: %w", ErrBadConfig, id, err)
		}
		if !ap.Addr().Unmap().IsLoopback() {
			return nil, fmt.Errorf("%w: node %d at %v: loopback addresses only", ErrBadConfig, id, ap)
		}
		p.nodes[id] = ap
	}
	for a := range p.nodes {
		for b := range p.nodes {
			if a >= b {
				continue
			}
			ab, err := p.open(link{a, b})
			if err != nil {
				p.closeAll()
				return nil, err
			}
			ba, err := p.open(link{b, a})
			if err != nil {
				p.closeAll()
				return nil, err
			}
			ab.peer, ba.peer = ba, ab
		}
	}
	for _, f := range p.fronts {
		p.wg.Add(1)
		go p.relay(f)
	}
	return p, nil
}

func (p *Proxy) open(l link) (*front, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("udpproxy: front for %d → %d: %w", l.from, l.to, err)
	}
	f := &front{l: l, conn: c}
	p.fronts[l] = f
	p.stats[l] = &Stats{}
	return f, nil
}

// Addr returns where node from sends to reach node to ("" if either is
// not a node of the proxy).
func (p *Proxy) Addr(from, to replica.NodeID) string {
	if f := p.fronts[link{from, to}]; f != nil {
		return f.conn.LocalAddr().String()
	}
	return ""
}

// Set puts fault f on the datagrams from node from to node to,
// replacing the one before; the zero Fault heals the direction.
func (p *Proxy) Set(from, to replica.NodeID, f Fault) error {
	if err := f.check(); err != nil {
		return err
	}
	l := link{from, to}
	if p.fronts[l] == nil {
		return fmt.Errorf("%w: no link from %d to %d", ErrBadConfig, from, to)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[l], p.since[l] = f, p.now()
	return nil
}

// SetAll puts fault f on every direction between the nodes.
func (p *Proxy) SetAll(f Fault) error {
	for l := range p.fronts {
		if err := p.Set(l.from, l.to, f); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the counts of the direction from → to.
func (p *Proxy) Stats(from, to replica.NodeID) Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.stats[link{from, to}]; s != nil {
		return *s
	}
	return Stats{}
}

// relay reads what node f.l.from sends to f, and passes it to node
// f.l.to from the pair's other front. Datagrams from any other address
// are dropped: only the node the front serves may use it.
func (p *Proxy) relay(f *front) {
	defer p.wg.Done()
	src, dst := p.nodes[f.l.from], p.nodes[f.l.to]
	buf := make([]byte, 65536)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		if from == src || netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) == src {
			p.pass(f.l, f.peer.conn, dst, append([]byte(nil), buf[:n]...))
		}
		if p.decided != nil {
			p.decided()
		}
	}
}

// pass applies the direction's fault to one datagram.
func (p *Proxy) pass(l link, out *net.UDPConn, dst netip.AddrPort, d []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	f, st := p.faults[l], p.stats[l]
	switch {
	case f.Cut || f.Down > 0 && p.now().Sub(p.since[l])%(f.Down+f.Up) < f.Down:
		st.Cut++
		return
	case f.Loss > 0 && p.rng.Float64() < f.Loss:
		st.Lost++
		return
	}
	wait := f.Delay
	if f.Jitter > 0 {
		wait += time.Duration(p.rng.Int64N(int64(f.Jitter) + 1))
	}
	if wait == 0 {
		st.Relayed++
		_, _ = out.WriteToUDPAddrPort(d, dst)
		return
	}
	if p.inFlight >= MaxInFlight {
		st.Overflow++
		return
	}
	p.inFlight++
	p.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		defer p.wg.Done()
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.timers, t)
		p.inFlight--
		if p.closed {
			return
		}
		st.Relayed++
		_, _ = out.WriteToUDPAddrPort(d, dst)
	})
	p.timers[t] = struct{}{}
}

// Close stops relaying: the fronts close, datagrams held in delays are
// dropped, and every goroutine the proxy started has returned.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for t := range p.timers {
		if t.Stop() {
			p.inFlight--
			p.wg.Done() // it will not run
		}
		delete(p.timers, t)
	}
	p.mu.Unlock()
	p.closeAll()
	p.wg.Wait()
	return nil
}

func (p *Proxy) closeAll() {
	for _, f := range p.fronts {
		_ = f.conn.Close()
	}
}
