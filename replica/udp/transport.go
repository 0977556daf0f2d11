package udp

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"

	"github.com/rolefsm/rolefsm/replica"
)

// Peer is another node as this one knows it.
type Peer struct {
	// Addr is the UDP address datagrams to the peer go to, such as
	// "127.0.0.1:7002". Datagrams from it are accepted from any
	// address: what counts is the key they are sealed with.
	Addr string
	// Keys are the peer's static public keys: one, or two while its
	// key is replaced (a handshake with either is the peer's). Not
	// used when the transport runs Insecure.
	Keys []PublicKey
}

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
	// Key is this node's static private key: its identity. Without a
	// key the transport refuses to start, unless Insecure is set: then
	// datagrams travel in the clear, unauthenticated, and anyone who
	// can reach the socket can speak as any node.
	Key      PrivateKey
	Insecure bool
	// Peers maps every other node's id to its address and public key.
	Peers map[replica.NodeID]Peer
	// MaxDatagram bounds the datagrams sent and accepted (default
	// DefaultMaxDatagram, at least 128).
	MaxDatagram int
	// Inbox is the capacity of each peer's queue of received batches
	// (default 256): a batch that finds its sender's queue full is
	// dropped and counted, and the queues are served in turn, so one
	// peer's flood cannot delay another's heartbeats.
	Inbox int
	// Logger receives the warnings and errors about peers (rate
	// limited: see WarnInterval); default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the protocol's timers (rekeying, retries,
	// rate limits, warnings); default time.Now. Only durations between
	// its readings count, never the wall time they show.
	Now func() time.Time
}

// Reason is why a datagram was dropped.
type Reason uint8

// The reasons, in the order of the checks a datagram goes through.
const (
	Oversize       Reason = iota
	Garbage               // truncated, not ours, or a body that does not parse
	BadVersion            // another version of the wire format
	BadTag                // failed authentication (or sealed when insecure, and the reverse)
	UnknownSender         // a handshake with a key no peer has, or an insecure datagram from an unknown id
	UnknownSession        // a session index this transport does not have (an old boot's, or made up)
	Misdirected           // made for another node's key or id
	Replayed              // a counter or an initiation seen before
	Expired               // a session past RejectAfterTime
	Superseded            // a session of a boot of the peer's that a later boot replaced
	RateLimited           // a handshake beyond the rate limits
	InboxFull             // the sender's queue was full
	// NumReasons is the number of reasons: Stats.Dropped's length.
	NumReasons
)

var reasonNames = [NumReasons]string{"oversize", "garbage", "version", "bad_tag", "unknown_sender", "unknown_session",
	"misdirected", "replayed", "expired", "superseded", "rate_limited", "inbox_full"}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Reasons returns every reason, in order.
func Reasons() []Reason {
	rs := make([]Reason, NumReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// Stats counts a transport's traffic.
type Stats struct {
	DatagramsSent, BytesSent         uint64
	DatagramsReceived, BytesReceived uint64 // every datagram read, dropped or not
	Dropped                          [NumReasons]uint64
	// KernelDrops is the datagrams the kernel dropped because the
	// socket's buffer was full (Linux reports it; 0 elsewhere).
	KernelDrops uint64
	// HandshakesSent counts initiations sent, HandshakesAnswered the
	// initiations answered, HandshakesCompleted the responses that
	// completed one of ours.
	HandshakesSent, HandshakesAnswered, HandshakesCompleted uint64
	// DuplicateIdentity counts the times two processes were found
	// speaking with one key: a peer's, seen here, or this node's,
	// reported by a peer.
	DuplicateIdentity uint64
	// Insecure is set when the transport runs without keys.
	Insecure bool
}

// Transport is a replica.Transport over UDP.
type Transport struct {
	cfg     Config
	conn    *net.UDPConn
	local   string // the address listened on, for the logs
	now     func() time.Time
	start   time.Time
	log     *slog.Logger
	static  noise.DHKey
	selfMac [32]byte
	boot    uint64
	max     int
	done    sync.WaitGroup
	quit    chan struct{}
	kick    chan struct{}

	mu       sync.Mutex // guards everything below, to inbox
	closed   bool
	peers    map[replica.NodeID]*peer
	order    []*peer // by id
	byKey    map[PublicKey]*peer
	byAddr   map[netip.AddrPort]*peer
	sessions map[uint32]*session
	pending  map[uint32]*peer
	seen     map[[32]byte]struct{} // recent initiations' ephemeral keys
	seenRing [][32]byte
	seenNext int
	other    bucket          // handshakes from anywhere but a peer's configured address (each peer has its own)
	buf      []byte          // a datagram being sent
	kept     []replica.Entry // a batch's entries but those left out
	body     []byte          // a body being built
	opened   []byte          // a body received
	write    func(d []byte, to netip.AddrPort) error

	in inbox

	sent, sentBytes, recv, recvBytes, kernelDrops atomic.Uint64
	hsSent, hsAnswered, hsCompleted, duplicates   atomic.Uint64
	dropped                                       [NumReasons]atomic.Uint64
}

// New listens on cfg.Listen and starts the transport's goroutines (one
// reads the socket, one serves the inbox, one runs the handshakes'
// timers); Close stops them. It starts a handshake with every peer at
// once.
func New(cfg Config) (*Transport, error) {
	t, err := build(cfg)
	if err != nil {
		return nil, err
	}
	t.conn = cfg.Conn
	if t.conn == nil {
		la, err := net.ResolveUDPAddr("udp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address: %w", ErrBadConfig, err)
		}
		if t.conn, err = net.ListenUDP("udp", la); err != nil {
			return nil, fmt.Errorf("udp: %w", err)
		}
	}
	t.local = t.conn.LocalAddr().String()
	t.write = func(d []byte, to netip.AddrPort) error {
		_, err := t.conn.WriteToUDPAddrPort(d, to)
		if err == nil {
			t.sent.Add(1)
			t.sentBytes.Add(uint64(len(d)))
		}
		return err
	}
	countsDrops := enableDropCount(t.conn)
	if cfg.Insecure {
		t.log.Warn("running insecure: heartbeats travel in the clear, and anyone who can reach this socket can speak as any node")
	}
	t.done.Add(3)
	go t.read(countsDrops)
	go t.serve()
	go t.timers()
	t.kickTimers()
	return t, nil
}

// build checks cfg and makes a transport without socket or goroutines:
// New adds them (and the tests drive one by hand).
func build(cfg Config) (*Transport, error) {
	bad := func(format string, args ...any) (*Transport, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...)
	}
	secure := cfg.Key != PrivateKey{}
	switch {
	case cfg.ID == 0:
		return bad("node id 0 (ids are 1-based)")
	case !secure && !cfg.Insecure:
		return bad("no key: give this node's private key, or run insecure on purpose")
	case secure && cfg.Insecure:
		return bad("both a key and insecure")
	case cfg.MaxDatagram != 0 && cfg.MaxDatagram < 128:
		return bad("max datagram %d, want at least 128", cfg.MaxDatagram)
	}
	if cfg.MaxDatagram == 0 {
		cfg.MaxDatagram = DefaultMaxDatagram
	}
	if cfg.Inbox <= 0 {
		cfg.Inbox = 256
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Transport{cfg: cfg, now: cfg.Now, log: cfg.Logger.With("component", "udp", "node", uint64(cfg.ID)),
		max: cfg.MaxDatagram, quit: make(chan struct{}), kick: make(chan struct{}, 1),
		peers: map[replica.NodeID]*peer{}, byKey: map[PublicKey]*peer{}, byAddr: map[netip.AddrPort]*peer{},
		sessions: map[uint32]*session{}, pending: map[uint32]*peer{}, seen: map[[32]byte]struct{}{},
		other: bucket{rate: OtherHandshakesPerSecond}}
	t.start = t.now()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	t.boot = binary.BigEndian.Uint64(b[:]) | 1 // never 0: 0 is "no boot heard"
	if secure {
		pub := cfg.Key.Public()
		t.static = noise.DHKey{Private: append([]byte(nil), cfg.Key[:]...), Public: pub[:]}
		t.selfMac = macKey(pub)
	}
	for id, pc := range cfg.Peers {
		if id == 0 || id == cfg.ID {
			return bad("peer id %d", id)
		}
		a, err := net.ResolveUDPAddr("udp", pc.Addr)
		if err != nil {
			return bad("peer %d: %v", id, err)
		}
		p := &peer{id: id, addr: a.AddrPort(), keys: pc.Keys, limiter: bucket{rate: HandshakesPerSecond}}
		p.addr = netip.AddrPortFrom(p.addr.Addr().Unmap(), p.addr.Port())
		if secure {
			if len(pc.Keys) == 0 {
				return bad("peer %d: no public key", id)
			}
			for _, k := range pc.Keys {
				if k == (PublicKey{}) {
					return bad("peer %d: the zero public key", id)
				}
				if other := t.byKey[k]; other != nil {
					return bad("peers %d and %d have the same public key", min(id, other.id), max(id, other.id))
				}
				if k == PublicKey(t.static.Public) {
					return bad("peer %d has this node's own public key", id)
				}
				t.byKey[k] = p
			}
		}
		t.peers[id] = p
		t.byAddr[p.addr] = p
		t.order = append(t.order, p)
	}
	slices.SortFunc(t.order, func(a, b *peer) int { return cmp.Compare(a.id, b.id) })
	t.in.init(cfg.Inbox)
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.conn.LocalAddr() }

// Limits returns what the transport carries: give them to the node
// (replica.Config.Limits), so that it opens no channel it could not
// send.
func (t *Transport) Limits() replica.Limits { return replica.Limits{MaxChannelName: MaxChannelName} }

// PublicKey returns this node's public key (the zero key when
// insecure).
func (t *Transport) PublicKey() PublicKey {
	var p PublicKey
	copy(p[:], t.static.Public)
	return p
}

// Inbox returns the channel of received batches; it is closed by Close.
// A batch's Entries are valid until the next batch is received from it:
// the transport reuses them (a replica.Driver steps each batch before
// it takes the next).
func (t *Transport) Inbox() <-chan replica.Inbound { return t.in.out }

// Close stops the goroutines and closes the inbox.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return replica.ErrTransportClosed
	}
	t.closed = true
	t.mu.Unlock()
	err := t.conn.Close()
	close(t.quit)
	t.done.Wait()
	return err
}

// clock reads the transport's monotonic clock: nanoseconds since New,
// never 0.
func (t *Transport) clock(now time.Time) uint64 { return uint64(max(now.Sub(t.start), 0)) + 1 }

// PeerStats is what the transport knows of one peer: enough to tell a
// peer that was never heard (a wrong address or port, a firewall) from
// one that is heard but fails authentication (another cluster's key, a
// rotated key not configured) or one heard from elsewhere.
type PeerStats struct {
	ID   replica.NodeID
	Addr string // its configured address
	// From is the address its latest authenticated datagram came from
	// ("" if none came).
	From string
	// Session reports whether a session with it is confirmed (with
	// Insecure: whether it was heard).
	Session bool
	// Handshakes counts this node's initiations to it that went
	// unanswered in a row (0 once one is answered).
	Handshakes int
	// Boots counts the boots of it heard (Batch.Incarnation).
	Boots uint64
	// Delivered counts its batches delivered.
	Delivered uint64
	// Dropped counts the datagrams from its configured address that
	// were dropped, by reason (Dropped[BadTag] are authentication
	// failures).
	Dropped [NumReasons]uint64
}

// Peers returns every configured peer, by id.
func (t *Transport) Peers() []PeerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := make([]PeerStats, 0, len(t.order))
	for _, p := range t.order {
		s := PeerStats{ID: p.id, Addr: p.addr.String(), Handshakes: p.attempts, Boots: p.epoch,
			Delivered: p.delivered, Dropped: p.dropped}
		if p.from.IsValid() {
			s.From = p.from.String()
		}
		if t.cfg.Insecure {
			s.Session = p.delivered > 0
		} else {
			s.Session = p.current != nil
		}
		ps = append(ps, s)
	}
	return ps
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	s := Stats{
		DatagramsSent: t.sent.Load(), BytesSent: t.sentBytes.Load(),
		DatagramsReceived: t.recv.Load(), BytesReceived: t.recvBytes.Load(),
		KernelDrops:    t.kernelDrops.Load(),
		HandshakesSent: t.hsSent.Load(), HandshakesAnswered: t.hsAnswered.Load(), HandshakesCompleted: t.hsCompleted.Load(),
		DuplicateIdentity: t.duplicates.Load(), Insecure: t.cfg.Insecure,
	}
	for i := range s.Dropped {
		s.Dropped[i] = t.dropped[i].Load()
	}
	return s
}
