package udp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rolefsm/rolefsm/replica"
)

// Config configures a Transport.
type Config struct {
	// ID is this node's id.
	ID replica.NodeID
	// Listen is the UDP address to listen on, such as "127.0.0.1:7001"
	// (port 0 picks a free one: see Addr).
	Listen string
	// Conn, if set, is an open socket to use instead of Listen; the
	// transport owns it from then on.
	Conn *net.UDPConn
	// Peers maps every other node's id to its UDP address.
	Peers map[replica.NodeID]string
	// Keys seal and open every datagram. Without keys the transport
	// refuses to start, unless Insecure is set: then datagrams travel
	// in the clear, unauthenticated, and sealed ones are refused.
	Keys     *Keyring
	Insecure bool
	// MaxDatagram bounds the datagrams sent and accepted (default
	// DefaultMaxDatagram, at least 128).
	MaxDatagram int
	// Inbox is the capacity of the inbox (default 256); a batch that
	// finds it full is dropped and counted.
	Inbox int
	// Incarnation identifies this process's boot to the receivers'
	// replay windows, and must grow from one boot to the next (default
	// the current time in nanoseconds).
	Incarnation uint64
}

// ErrConfig is matched by every configuration error of New.
var ErrConfig = errors.New("udp: bad configuration")

// Reason is why a datagram was dropped.
type Reason uint8

// The reasons, in the order of the checks a datagram goes through.
const (
	Oversize Reason = iota
	Garbage         // truncated or not ours
	BadVersion
	BadTag
	UnknownSender
	Misdirected // sealed for another node
	Replayed
	InboxFull
	numReasons
)

var reasonNames = [numReasons]string{"oversize", "garbage", "version", "bad_tag", "unknown_sender", "misdirected", "replayed", "inbox_full"}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Reasons returns every reason, in order.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// Stats counts a transport's traffic.
type Stats struct {
	DatagramsSent, BytesSent         uint64
	DatagramsReceived, BytesReceived uint64 // every datagram read, dropped or not
	Dropped                          [numReasons]uint64
}

// Transport is a replica.Transport over UDP.
type Transport struct {
	cfg   Config
	conn  *net.UDPConn
	peers map[replica.NodeID]*net.UDPAddr
	inbox chan replica.Inbound
	done  sync.WaitGroup

	mu      sync.Mutex // guards buf, payload, closed and echoes
	buf     []byte
	payload []byte
	closed  bool

	windows map[replica.NodeID]*window // the reader's own
	start   time.Time                  // the transport's boot, for its monotonic clock
	echoes  map[replica.NodeID]*echo   // per peer: the sequence sent to it, and what to echo

	sent, sentBytes, recv, recvBytes atomic.Uint64
	dropped                          [numReasons]atomic.Uint64
}

// New listens on cfg.Listen and starts the reader goroutine; Close
// stops it.
func New(cfg Config) (*Transport, error) {
	bad := func(format string, args ...any) (*Transport, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case cfg.ID == 0:
		return bad("node id 0 (ids are 1-based)")
	case cfg.Keys == nil && !cfg.Insecure:
		return bad("no key: give a keyring, or run insecure on purpose")
	case cfg.Keys != nil && cfg.Insecure:
		return bad("both a keyring and insecure")
	case cfg.MaxDatagram != 0 && cfg.MaxDatagram < 128:
		return bad("max datagram %d, want at least 128", cfg.MaxDatagram)
	}
	if cfg.MaxDatagram == 0 {
		cfg.MaxDatagram = DefaultMaxDatagram
	}
	if cfg.Inbox <= 0 {
		cfg.Inbox = 256
	}
	if cfg.Incarnation == 0 {
		cfg.Incarnation = uint64(time.Now().UnixNano())
	}
	t := &Transport{cfg: cfg, peers: make(map[replica.NodeID]*net.UDPAddr), windows: make(map[replica.NodeID]*window),
		start: time.Now(), echoes: make(map[replica.NodeID]*echo)}
	for id, addr := range cfg.Peers {
		if id == 0 || id == cfg.ID {
			return bad("peer id %d", id)
		}
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return bad("peer %d: %v", id, err)
		}
		t.peers[id] = a
		t.windows[id] = &window{}
		t.echoes[id] = &echo{}
	}
	t.conn = cfg.Conn
	if t.conn == nil {
		la, err := net.ResolveUDPAddr("udp", cfg.Listen)
		if err != nil {
			return bad("listen address: %v", err)
		}
		if t.conn, err = net.ListenUDP("udp", la); err != nil {
			return nil, fmt.Errorf("udp: %w", err)
		}
	}
	t.inbox = make(chan replica.Inbound, cfg.Inbox)
	t.done.Add(1)
	go t.read()
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.conn.LocalAddr() }

// Inbox returns the channel of received batches; it is closed by Close.
func (t *Transport) Inbox() <-chan replica.Inbound { return t.inbox }

// Close stops the reader and closes the inbox.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return replica.ErrTransportClosed
	}
	t.closed = true
	t.mu.Unlock()
	err := t.conn.Close()
	t.done.Wait()
	close(t.inbox)
	return err
}

// Send seals b into as many datagrams as it takes and writes them to
// node to. A channel name longer than MaxChannelName is an error, and
// nothing is sent.
func (t *Transport) Send(_ context.Context, to replica.NodeID, b replica.Batch) error {
	addr := t.peers[to]
	if addr == nil {
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, to)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return replica.ErrTransportClosed
	}
	return t.encode(to, b, func(d []byte) error {
		if _, err := t.conn.WriteToUDP(d, addr); err != nil {
			return fmt.Errorf("udp: sending to node %d: %w", to, err)
		}
		t.sent.Add(1)
		t.sentBytes.Add(uint64(len(d)))
		return nil
	})
}

// encode seals b for peer to into datagrams, handing each to emit
// (valid until emit returns); t.mu must be held. A channel name longer
// than MaxChannelName is an error, and nothing is emitted.
func (t *Transport) encode(to replica.NodeID, b replica.Batch, emit func([]byte) error) error {
	for _, e := range b.Entries {
		if len(e.Channel) > MaxChannelName {
			return fmt.Errorf("udp: channel name of %d bytes, at most %d", len(e.Channel), MaxChannelName)
		}
	}
	room := t.cfg.MaxDatagram - HeaderSize
	if t.cfg.Keys != nil {
		room -= TagSize
	}
	entries := b.Entries
	for first := true; first || len(entries) > 0; first = false {
		// As many entries as fit, after the count (no wider than the
		// count of all that are left).
		used, n := uvarintLen(uint64(len(entries))), 0
		for n < len(entries) && used+entrySize(entries[n]) <= room {
			used += entrySize(entries[n])
			n++
		}
		if n == 0 && len(entries) > 0 {
			return fmt.Errorf("udp: an entry of %d bytes does not fit a datagram", entrySize(entries[0]))
		}
		p := t.payload[:0]
		p = binary.AppendUvarint(p, uint64(n))
		for _, e := range entries[:n] {
			p = appendEntry(p, e)
		}
		t.payload = p
		entries = entries[n:]
		e := t.echoes[to]
		e.seq++
		h := Header{From: t.cfg.ID, To: to, Incarnation: t.cfg.Incarnation, Seq: e.seq, Beat: b.Seq, Sent: t.clock()}
		if e.sent != 0 {
			h.Echo, h.Held = e.sent, h.Sent-e.at
		}
		d, err := seal(t.buf, h, p, t.cfg.Keys)
		if err != nil {
			return err
		}
		t.buf = d
		if err := emit(d); err != nil {
			return err
		}
	}
	return nil
}

// read runs until the connection closes: every datagram is checked and
// either delivered or dropped under its reason.
func (t *Transport) read() {
	defer t.done.Done()
	buf := make([]byte, 1<<16)
	for {
		n, _, err := t.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error (an ICMP echo of a send): keep reading
		}
		t.recv.Add(1)
		t.recvBytes.Add(uint64(n))
		if r, ok := t.accept(buf[:n]); !ok {
			t.dropped[r].Add(1)
		}
	}
}

// accept checks one datagram and delivers its batch, or says why not.
func (t *Transport) accept(d []byte) (Reason, bool) {
	h, b, err := Decode(d, t.cfg.Keys, t.cfg.MaxDatagram)
	switch {
	case errors.Is(err, ErrOversize):
		return Oversize, false
	case errors.Is(err, ErrVersion):
		return BadVersion, false
	case errors.Is(err, ErrBadTag):
		return BadTag, false
	case err != nil:
		return Garbage, false
	}
	w := t.windows[h.From]
	if w == nil {
		return UnknownSender, false
	}
	if h.To != t.cfg.ID {
		return Misdirected, false
	}
	if !w.accept(h.Incarnation, h.Seq) {
		return Replayed, false
	}
	in := replica.Inbound{Batch: b}
	now := t.clock()
	t.mu.Lock()
	t.echoes[h.From].observe(h, now)
	t.mu.Unlock()
	in.RTT, in.HasRTT = roundTrip(h, now)
	select {
	case t.inbox <- in:
		return 0, true
	default:
		return InboxFull, false
	}
}

// echo is the sequence number last sent to a peer, and what the
// transport last heard from it, to echo back: the peer's send time,
// and when it arrived here.
type echo struct {
	seq                   uint64
	incarnation, sent, at uint64
}

// observe keeps the latest send time heard from the peer: of its
// current process, and not one reordered behind a later one.
func (e *echo) observe(h Header, now uint64) {
	if h.Sent > e.sent || h.Incarnation != e.incarnation {
		e.incarnation, e.sent, e.at = h.Incarnation, h.Sent, now
	}
}

// roundTrip is the RTT a datagram received at now measures, if it
// echoes one of ours: now, less our send time it echoes, less the time
// the peer held it. An echo from the future, or a hold longer than the
// round trip, measures nothing.
func roundTrip(h Header, now uint64) (time.Duration, bool) {
	if h.Echo == 0 || h.Echo > now || now-h.Echo < h.Held {
		return 0, false
	}
	return time.Duration(now - h.Echo - h.Held), true
}

// clock reads the transport's monotonic clock: nanoseconds since New,
// never 0.
func (t *Transport) clock() uint64 { return uint64(time.Since(t.start)) + 1 }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	s := Stats{
		DatagramsSent: t.sent.Load(), BytesSent: t.sentBytes.Load(),
		DatagramsReceived: t.recv.Load(), BytesReceived: t.recvBytes.Load(),
	}
	for i := range s.Dropped {
		s.Dropped[i] = t.dropped[i].Load()
	}
	return s
}
