package udp

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
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

// ErrBadConfig is matched by every configuration error of New.
var ErrBadConfig = errors.New("udp: bad configuration")

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

// session is one handshake's keys with one peer (or, insecure, one boot
// of the peer's).
type session struct {
	peer          *peer
	index, remote uint32       // ours (on datagrams to us) and theirs
	send, recv    noise.Cipher // nil when insecure
	sent          uint64       // the next counter to send with
	window        window
	created       time.Time
	started       time.Time // when its handshake began: the initiation sent, or received
	initiator     bool
	confirmed     bool // usable: the initiator's at once, the responder's after a datagram under it
	boot          uint64
	from          netip.AddrPort // the latest authenticated datagram's source
	noticed       time.Time      // when the process behind it was last told it is superseded
	stale         bool           // its boot was superseded while it lived
	heard         bool           // a datagram arrived under it
}

// handshake is an initiation of ours waiting for its response.
type handshake struct {
	hs    *noise.HandshakeState
	index uint32
	at    time.Time
}

// superseded is a boot of a peer's that a later one replaced.
type superseded struct {
	boot uint64
	at   time.Time
	from netip.AddrPort
}

// The warnings, each rate limited per peer.
const (
	warnNotForUs = iota
	warnWrongKey
	warnMode
	warnSilent
	warnDuplicate
	numWarnings
)

type warning struct {
	at         time.Time
	suppressed int
}

type peer struct {
	id       replica.NodeID
	addr     netip.AddrPort
	keys     []PublicKey
	sessions []*session // newest first
	current  *session   // the one sent with
	hs       *handshake
	attempts int
	nextTry  time.Time
	firstTry time.Time // when the current run of unanswered handshakes began

	boot  uint64 // the boot heard (0: none yet)
	epoch uint64 // Batch.Incarnation: one more at every change of boot
	from  netip.AddrPort
	old   [2]superseded
	echo  echo

	queue      [][]byte  // bodies waiting for a session: the latest heartbeat's
	lastRejoin time.Time // the latest handshake a notice made this node start
	counter    uint64    // insecure: the next counter to send with
	warned     [numWarnings]warning
	limiter    bucket // handshakes from its configured address, and responses to ours
}

// echo is the latest send time heard from a peer, and when it arrived
// here, to echo back.
type echo struct{ sent, at uint64 }

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

// Send seals b into as many datagrams as it takes and writes them to
// node to. Before the first handshake with the peer completes, the
// latest heartbeat waits for it (the earlier ones are dropped, as
// heartbeats may be). An entry whose channel name the wire cannot
// carry (empty, or longer than MaxChannelName) is left out and named
// in the error (a *SendError); the others are sent.
func (t *Transport) Send(_ context.Context, to replica.NodeID, b replica.Batch) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return replica.ErrTransportClosed
	}
	p := t.peers[to]
	if p == nil {
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, to)
	}
	return t.encode(t.now(), p, b)
}

// encode sends b to p in datagrams; t.mu is held.
func (t *Transport) encode(now time.Time, p *peer, b replica.Batch) error {
	var left *SendError
	for i, e := range b.Entries {
		if err := checkName(e.Channel); err != nil {
			if left == nil {
				left = &SendError{To: p.id}
				b.Entries = append(t.kept[:0], b.Entries[:i]...)
			}
			left.Left = append(left.Left, replica.EntryError{Channel: e.Channel, Err: err})
			continue
		}
		if left != nil {
			b.Entries = append(b.Entries, e)
		}
	}
	if left != nil {
		t.kept = b.Entries
		if err := t.encodeEntries(now, p, b); err != nil {
			return err
		}
		return left
	}
	return t.encodeEntries(now, p, b)
}

// encodeEntries sends b, whose every name fits, to p; t.mu is held.
func (t *Transport) encodeEntries(now time.Time, p *peer, b replica.Batch) error {
	room := t.max - Overhead
	if t.cfg.Insecure {
		room = t.max - PlainHeaderSize - BodyHeaderSize
	}
	s := t.sendSession(now, p)
	if s == nil {
		p.queue = p.queue[:0] // the newest heartbeat replaces the ones waiting
	}
	entries := b.Entries
	for first := true; first || len(entries) > 0; first = false {
		used, n := uvarintLen(uint64(len(entries))), 0
		for n < len(entries) && used+entrySize(entries[n]) <= room {
			used += entrySize(entries[n])
			n++
		}
		if n == 0 && len(entries) > 0 {
			return fmt.Errorf("udp: an entry of %d bytes does not fit a datagram", entrySize(entries[0]))
		}
		bd := t.bodyFor(now, p, kindHeartbeat, b.Seq)
		bd = binary.AppendUvarint(bd, uint64(n))
		for _, e := range entries[:n] {
			bd = appendEntry(bd, e)
		}
		t.body = bd
		entries = entries[n:]
		switch {
		case t.cfg.Insecure:
			if err := t.sendPlain(p, bd); err != nil {
				return err
			}
		case s != nil:
			if err := t.seal(s, bd, p.addr); err != nil {
				return err
			}
		case len(p.queue) < maxQueued:
			p.queue = append(p.queue, append([]byte(nil), bd...))
		}
	}
	return nil
}

// bodyFor starts a body to p with the round trip's fields.
func (t *Transport) bodyFor(now time.Time, p *peer, kind byte, beat uint64) []byte {
	bd := body{kind: kind, beat: beat, sent: t.clock(now)}
	if p.echo.sent != 0 {
		bd.echo, bd.held = p.echo.sent, bd.sent-p.echo.at
	}
	return appendBody(t.body[:0], bd)
}

// sendSession returns the session to send to p with, nil if none; it
// starts a handshake when there is none or the current one is due for
// a new one. t.mu is held.
func (t *Transport) sendSession(now time.Time, p *peer) *session {
	if t.cfg.Insecure {
		return nil
	}
	s := p.current
	if s != nil && (now.Sub(s.created) >= RejectAfterTime || s.sent >= RejectAfterMessages) {
		s, p.current = nil, nil
	}
	if t.rekeyDue(now, p) && (p.hs == nil || !now.Before(p.nextTry)) {
		t.initiate(now, p)
	}
	return s
}

// rekeyDue reports whether p needs a handshake: no session to send
// with, or one past a rekey bound. The responder of a session waits a
// RekeyTimeout longer than its initiator, so the two seldom both start.
func (t *Transport) rekeyDue(now time.Time, p *peer) bool {
	s := p.current
	if s == nil {
		return true
	}
	after := RekeyAfterTime
	if !s.initiator {
		after += RekeyTimeout
	}
	if s.initiator && !s.heard && now.Sub(s.created) >= RekeyTimeout {
		return true // the responder may have lost it: nothing came back under it
	}
	return now.Sub(s.created) >= after || s.sent >= RekeyAfterMessages
}

// seal seals a body under s and writes it to addr.
func (t *Transport) seal(s *session, bd []byte, addr netip.AddrPort) error {
	d := appendPrefix(t.buf[:0], typeData)
	d = binary.BigEndian.AppendUint32(d, s.remote)
	d = binary.BigEndian.AppendUint64(d, s.sent)
	d = s.send.Encrypt(d, s.sent, d[:DataHeaderSize], bd)
	s.sent++
	t.buf = d
	if err := t.write(d, addr); err != nil {
		return fmt.Errorf("udp: sending to node %d: %w", s.peer.id, err)
	}
	return nil
}

// sendPlain writes an insecure datagram to p.
func (t *Transport) sendPlain(p *peer, bd []byte) error {
	d := appendPrefix(t.buf[:0], typePlain)
	d = binary.BigEndian.AppendUint64(d, uint64(t.cfg.ID))
	d = binary.BigEndian.AppendUint64(d, uint64(p.id))
	d = binary.BigEndian.AppendUint64(d, t.boot)
	d = binary.BigEndian.AppendUint64(d, p.counter)
	p.counter++
	d = append(d, bd...)
	t.buf = d
	if err := t.write(d, p.addr); err != nil {
		return fmt.Errorf("udp: sending to node %d: %w", p.id, err)
	}
	return nil
}

// initiate sends a new initiation to p (replacing one in flight) and
// sets when to try again: HandshakeRetry, doubling up to RekeyTimeout,
// with up to a quarter of jitter. t.mu is held.
func (t *Transport) initiate(now time.Time, p *peer) {
	if p.hs != nil {
		delete(t.pending, p.hs.index)
		p.hs = nil
	}
	idx := t.newIndex()
	key := p.keys[p.attempts%len(p.keys)] // during a key change, each in turn
	hs, msg, err := initiation(t.static, key, idx, t.boot)
	if err != nil {
		t.log.Error("handshake not started", "peer", uint64(p.id), "error", err.Error())
		return
	}
	p.hs = &handshake{hs: hs, index: idx, at: now}
	t.pending[idx] = p
	if p.firstTry.IsZero() {
		p.firstTry = now
	}
	wait := min(HandshakeRetry<<min(p.attempts, 10), RekeyTimeout)
	wait += time.Duration(mrand.Int64N(int64(wait)/4 + 1))
	p.attempts++
	p.nextTry = now.Add(wait)
	t.hsSent.Add(1)
	_ = t.write(msg, p.addr) // a lost initiation is retried
}

// newIndex returns a random session index not in use. t.mu is held.
func (t *Transport) newIndex() uint32 {
	for {
		i := mrand.Uint32()
		if _, used := t.sessions[i]; i != 0 && !used && t.pending[i] == nil {
			return i
		}
	}
}

// read runs until the socket closes: every datagram is checked and
// either delivered or dropped under its reason.
func (t *Transport) read(countsDrops bool) {
	defer t.done.Done()
	buf := make([]byte, 1<<16)
	var oob []byte
	if countsDrops {
		oob = make([]byte, 64)
	}
	for {
		n, oobn, _, src, err := t.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error (an ICMP echo of a send): keep reading
		}
		if oobn > 0 {
			if total, ok := dropCount(oob[:oobn]); ok {
				t.kernelDrops.Store(uint64(total))
			}
		}
		t.recv.Add(1)
		t.recvBytes.Add(uint64(n))
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		t.mu.Lock()
		from, in, r, ok := t.handle(t.now(), src, buf[:n])
		t.mu.Unlock()
		switch {
		case !ok:
			t.dropped[r].Add(1)
		case from != 0 && !t.in.push(from, in):
			t.dropped[InboxFull].Add(1)
		}
	}
}

// handle acts on one datagram from src: it returns the batch to
// deliver and its sender (0 if nothing is to be delivered), or why the
// datagram was dropped. t.mu is held.
func (t *Transport) handle(now time.Time, src netip.AddrPort, d []byte) (replica.NodeID, replica.Inbound, Reason, bool) {
	var none replica.Inbound
	switch {
	case len(d) > t.max:
		return 0, none, Oversize, false
	case len(d) < 4 || d[0] != 'r' || d[1] != 'f':
		return 0, none, Garbage, false
	case d[2] != Version:
		return 0, none, BadVersion, false
	}
	typ := d[3]
	if typ != typeInitiation && typ != typeResponse && typ != typeData && typ != typePlain {
		return 0, none, Garbage, false
	}
	if t.cfg.Insecure != (typ == typePlain) {
		if p := t.byAddr[src]; p != nil {
			mine, theirs := "with keys", "insecure"
			if t.cfg.Insecure {
				mine, theirs = theirs, mine
			}
			t.warn(now, p, warnMode, "peer runs "+theirs+", this node "+mine+": they cannot hear each other", "from", src.String())
		}
		return 0, none, BadTag, false
	}
	switch typ {
	case typeInitiation:
		r, ok := t.onInitiation(now, src, d)
		return 0, none, r, ok
	case typeResponse:
		r, ok := t.onResponse(now, src, d)
		return 0, none, r, ok
	case typeData:
		return t.onData(now, src, d)
	}
	return t.onPlain(now, src, d)
}

// notForUs warns, if src is a peer's address, that its datagrams are
// not made for this node's key.
func (t *Transport) notForUs(now time.Time, src netip.AddrPort) {
	if p := t.byAddr[src]; p != nil {
		t.warn(now, p, warnNotForUs, "datagrams from the peer's address are not made for this node's key: "+
			"it has another public key configured for this node, or belongs to another cluster",
			"from", src.String(), "public_key", t.PublicKey().String())
	}
}

// limit takes a token for a handshake from src.
func (t *Transport) limit(now time.Time, src netip.AddrPort) bool {
	if p := t.byAddr[src]; p != nil {
		return p.limiter.take(now)
	}
	return t.other.take(now)
}

func (t *Transport) onInitiation(now time.Time, src netip.AddrPort, d []byte) (Reason, bool) {
	if len(d) != InitiationSize {
		return Garbage, false
	}
	if !macOK(&t.selfMac, d) {
		t.notForUs(now, src)
		return Misdirected, false
	}
	var eph [32]byte
	copy(eph[:], d[8:40])
	if _, dup := t.seen[eph]; dup {
		return Replayed, false
	}
	if !t.limit(now, src) {
		return RateLimited, false
	}
	idx := t.newIndex()
	a, err := answer(t.static, d, idx, t.boot)
	if err != nil {
		return BadTag, false
	}
	t.remember(eph)
	p := t.byKey[a.peerStatic]
	if p == nil {
		if p = t.byAddr[src]; p != nil {
			t.warn(now, p, warnWrongKey, "the peer's address speaks with a key not configured for it: "+
				"is it the key its public key was taken from?", "from", src.String(), "public_key", a.peerStatic.String())
		}
		return UnknownSender, false
	}
	s := &session{peer: p, index: idx, remote: a.index, send: a.send.Cipher(), recv: a.recv.Cipher(),
		created: now, started: now, boot: a.boot, from: src}
	t.addSession(now, p, s)
	t.hsAnswered.Add(1)
	_ = t.write(a.response, src)
	return 0, true
}

func (t *Transport) onResponse(now time.Time, src netip.AddrPort, d []byte) (Reason, bool) {
	if len(d) != ResponseSize {
		return Garbage, false
	}
	if !macOK(&t.selfMac, d) {
		t.notForUs(now, src)
		return Misdirected, false
	}
	idx := binary.BigEndian.Uint32(d[8:])
	p := t.pending[idx]
	if p == nil {
		return UnknownSession, false
	}
	if !p.limiter.take(now) {
		return RateLimited, false
	}
	boot, remote, send, recv, err := complete(p.hs.hs, d)
	if err != nil {
		return BadTag, false
	}
	started := p.hs.at
	delete(t.pending, idx)
	p.hs, p.attempts, p.firstTry = nil, 0, time.Time{}
	s := &session{peer: p, index: idx, remote: remote, send: send.Cipher(), recv: recv.Cipher(),
		created: now, started: started, initiator: true, boot: boot, from: src}
	t.addSession(now, p, s)
	t.hsCompleted.Add(1)
	if !t.confirm(now, p, s) {
		return Superseded, false
	}
	// Confirm the session to the responder at once: the heartbeat that
	// waited for it, or a keep-alive.
	if len(p.queue) == 0 {
		_ = t.seal(s, t.bodyFor(now, p, kindKeepalive, 0), p.addr)
	}
	for _, bd := range p.queue {
		_ = t.seal(s, bd, p.addr)
	}
	p.queue = p.queue[:0]
	return 0, true
}

func (t *Transport) onData(now time.Time, src netip.AddrPort, d []byte) (replica.NodeID, replica.Inbound, Reason, bool) {
	var none replica.Inbound
	if len(d) < DataHeaderSize+BodyHeaderSize+TagSize {
		return 0, none, Garbage, false
	}
	s := t.sessions[binary.BigEndian.Uint32(d[4:])]
	if s == nil {
		return 0, none, UnknownSession, false
	}
	if now.Sub(s.created) >= RejectAfterTime {
		t.dropSession(s)
		return 0, none, Expired, false
	}
	n := binary.BigEndian.Uint64(d[8:])
	if !s.window.check(n) {
		return 0, none, Replayed, false
	}
	opened, err := s.recv.Decrypt(t.opened[:0], n, d[:DataHeaderSize], d[DataHeaderSize:])
	if err != nil {
		return 0, none, BadTag, false
	}
	t.opened = opened
	s.window.accept(n)
	s.from = src
	wasConfirmed := s.confirmed
	s.heard = true
	from, in, r, ok := t.onBody(now, s, src, opened)
	if ok && !wasConfirmed && !s.initiator && s.confirmed {
		_ = t.seal(s, t.bodyFor(now, s.peer, kindKeepalive, 0), s.from) // tell the initiator it is heard
	}
	return from, in, r, ok
}

func (t *Transport) onPlain(now time.Time, src netip.AddrPort, d []byte) (replica.NodeID, replica.Inbound, Reason, bool) {
	var none replica.Inbound
	if len(d) < PlainHeaderSize+BodyHeaderSize {
		return 0, none, Garbage, false
	}
	p := t.peers[replica.NodeID(binary.BigEndian.Uint64(d[4:]))]
	if p == nil {
		return 0, none, UnknownSender, false
	}
	if replica.NodeID(binary.BigEndian.Uint64(d[12:])) != t.cfg.ID {
		return 0, none, Misdirected, false
	}
	boot, n := binary.BigEndian.Uint64(d[20:]), binary.BigEndian.Uint64(d[28:])
	var s *session
	for _, x := range p.sessions {
		if x.boot == boot {
			s = x
			break
		}
	}
	if s == nil {
		s = &session{peer: p, created: now, started: now, boot: boot}
		t.addSession(now, p, s)
	}
	if !s.window.accept(n) {
		return 0, none, Replayed, false
	}
	s.from = src
	return t.onBody(now, s, src, d[PlainHeaderSize:])
}

// onBody acts on an authenticated body under s.
func (t *Transport) onBody(now time.Time, s *session, src netip.AddrPort, b []byte) (replica.NodeID, replica.Inbound, Reason, bool) {
	var none replica.Inbound
	p := s.peer
	if !t.confirm(now, p, s) {
		t.notice(now, s)
		return 0, none, Superseded, false
	}
	p.from = src
	bd, rest, err := parseBody(b)
	if err != nil {
		return 0, none, Garbage, false
	}
	switch bd.kind {
	case kindKeepalive:
		if len(rest) != 0 {
			return 0, none, Garbage, false
		}
		return 0, none, 0, true
	case kindNotice:
		t.onNotice(now, p, src, rest)
		return 0, none, 0, true
	}
	es, err := decode(rest, t.in.slab())
	if err != nil {
		t.in.recycle(es)
		return 0, none, Garbage, false
	}
	at := t.clock(now)
	if bd.sent > p.echo.sent {
		p.echo = echo{sent: bd.sent, at: at}
	}
	in := replica.Inbound{Batch: replica.Batch{From: p.id, Seq: bd.beat, Incarnation: p.epoch, Entries: es}}
	in.RTT, in.HasRTT = roundTrip(bd, at)
	return p.id, in, 0, true
}

// confirm makes s usable, and its boot the one heard from p, unless a
// later boot superseded that boot. A superseded boot is heard again
// only if it proves it is alive: with a session whose handshake began
// after it was superseded (insecure, with datagrams DuplicateGrace
// after), so that no delayed or captured datagram of a process that
// restarted can bring it back. One that does is a second process
// holding p's key: it is reported, and heard in its turn, so that
// neither can silence the other for good. It reports whether s's
// datagrams are to be delivered. t.mu is held.
func (t *Transport) confirm(now time.Time, p *peer, s *session) bool {
	if s.stale {
		return false
	}
	if s.boot != p.boot {
		for _, o := range p.old {
			if o.boot != s.boot || o.at.IsZero() {
				continue
			}
			alive := s.started.After(o.at)
			if t.cfg.Insecure {
				alive = now.Sub(o.at) >= DuplicateGrace
			}
			if !alive {
				return false
			}
			t.duplicates.Add(1)
			t.warn(now, p, warnDuplicate, "two processes speak with the peer's key: its peers hear each in turn until one stops",
				"from", s.from.String(), "and", p.from.String())
			break
		}
		if p.boot != 0 {
			p.old[1], p.old[0] = p.old[0], superseded{boot: p.boot, at: now, from: p.from}
		}
		if !t.cfg.Insecure {
			for _, x := range p.sessions {
				if x.boot != s.boot {
					x.stale = true
				}
			}
		}
		p.boot, p.from, p.echo = s.boot, s.from, echo{}
		p.epoch++
		if p.current != nil && p.current.boot != s.boot {
			p.current = nil
		}
	}
	s.confirmed = true
	// The newest session is the one sent with (a peer's responder
	// session confirmed late does not replace a newer one of ours).
	if !t.cfg.Insecure && (p.current == nil || (s != p.current && s.created.After(p.current.created))) {
		p.current = s
	}
	if p.current == s {
		p.firstTry = time.Time{}
	}
	return true
}

// notice tells the process behind a superseded session that another
// process speaks with its key (at most once a NoticeInterval a
// session, and only in answer to an authenticated datagram).
func (t *Transport) notice(now time.Time, s *session) {
	p := s.peer
	if !s.noticed.IsZero() && now.Sub(s.noticed) < NoticeInterval {
		return
	}
	s.noticed = now
	bd := append(t.bodyFor(now, p, kindNotice, 0), p.from.String()...)
	t.body = bd
	if t.cfg.Insecure {
		_ = t.sendPlainTo(p, bd, s.from)
		return
	}
	_ = t.seal(s, bd, s.from)
}

// sendPlainTo is sendPlain to another address than the peer's.
func (t *Transport) sendPlainTo(p *peer, bd []byte, to netip.AddrPort) error {
	saved := p.addr
	p.addr = to
	err := t.sendPlain(p, bd)
	p.addr = saved
	return err
}

// onNotice logs a peer's report that another process speaks with this
// node's key.
func (t *Transport) onNotice(now time.Time, p *peer, src netip.AddrPort, other []byte) {
	t.duplicates.Add(1)
	if len(other) > 64 {
		other = other[:64]
	}
	t.warn(now, p, warnDuplicate, "another process speaks with this node's key: the peer hears both, each in turn, until one stops",
		"this_process", t.local, "other_process", string(other), "peer_at", src.String())
	// Prove to the peer that this process is alive: a new handshake
	// makes it hear this one again (at most once a HandshakeRetry).
	if !t.cfg.Insecure && (p.lastRejoin.IsZero() || now.Sub(p.lastRejoin) >= HandshakeRetry) {
		p.lastRejoin = now
		t.initiate(now, p)
	}
}

// addSession keeps s, dropping p's oldest session past maxSessions and
// those past RejectAfterTime. t.mu is held.
func (t *Transport) addSession(now time.Time, p *peer, s *session) {
	if s.index != 0 {
		t.sessions[s.index] = s
	}
	p.sessions = slices.Insert(p.sessions, 0, s)
	for i := len(p.sessions) - 1; i > 0; i-- {
		if old := p.sessions[i]; old.recv != nil && now.Sub(old.created) >= RejectAfterTime {
			t.dropSession(old)
		}
	}
	// Past the bound, the oldest session no datagram has confirmed goes
	// first (a replayed initiation makes one), then the oldest not in
	// use: a flood of handshakes cannot push out the session in use.
	for len(p.sessions) > maxSessions {
		victim := -1
		for i := len(p.sessions) - 1; i > 0 && victim < 0; i-- {
			if !p.sessions[i].confirmed {
				victim = i
			}
		}
		for i := len(p.sessions) - 1; i > 0 && victim < 0; i-- {
			if p.sessions[i] != p.current {
				victim = i
			}
		}
		t.dropSession(p.sessions[victim])
	}
}

// dropSession forgets s. t.mu is held.
func (t *Transport) dropSession(s *session) {
	p := s.peer
	delete(t.sessions, s.index)
	for i, x := range p.sessions {
		if x == s {
			p.sessions = append(p.sessions[:i], p.sessions[i+1:]...)
			break
		}
	}
	if p.current == s {
		p.current = nil
	}
}

// remember records an initiation's ephemeral key, forgetting the
// oldest past replayCache. t.mu is held.
func (t *Transport) remember(eph [32]byte) {
	if len(t.seenRing) < replayCache {
		t.seenRing = append(t.seenRing, eph)
	} else {
		delete(t.seen, t.seenRing[t.seenNext])
		t.seenRing[t.seenNext] = eph
		t.seenNext = (t.seenNext + 1) % replayCache
	}
	t.seen[eph] = struct{}{}
}

// warn logs msg about p at most once a WarnInterval per kind, with the
// count of those left out since.
func (t *Transport) warn(now time.Time, p *peer, kind int, msg string, attrs ...any) {
	w := &p.warned[kind]
	if !w.at.IsZero() && now.Sub(w.at) < WarnInterval {
		w.suppressed++
		return
	}
	attrs = append(attrs, "peer", uint64(p.id), "peer_addr", p.addr.String())
	if w.suppressed > 0 {
		attrs = append(attrs, "repeated", w.suppressed)
	}
	w.at, w.suppressed = now, 0
	if kind == warnDuplicate {
		t.log.Error(msg, attrs...)
		return
	}
	t.log.Warn(msg, attrs...)
}

// timers runs the handshakes' retries and rekeys; it sleeps while none
// is due.
func (t *Transport) timers() {
	defer t.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-t.quit:
			return
		case <-t.kick:
		case <-timer.C:
		}
		t.mu.Lock()
		now := t.now()
		next := t.maintain(now)
		t.mu.Unlock()
		timer.Stop()
		timer.Reset(max(next.Sub(now), time.Millisecond))
	}
}

func (t *Transport) kickTimers() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// maintain starts the handshakes that are due, warns about peers that
// answer none, and returns when to look again. t.mu is held.
func (t *Transport) maintain(now time.Time) time.Time {
	next := now.Add(RekeyAfterTime)
	if t.cfg.Insecure {
		return next
	}
	for _, p := range t.order {
		if t.rekeyDue(now, p) {
			if p.hs == nil || !now.Before(p.nextTry) {
				t.initiate(now, p)
			}
			if !p.firstTry.IsZero() && p.current == nil && now.Sub(p.firstTry) >= SilentPeerAfter {
				t.warn(now, p, warnSilent, "the peer has answered no handshake: it is down, or its address is wrong, "+
					"or a firewall drops UDP, or it does not have this node's public key",
					"for", now.Sub(p.firstTry).Round(time.Second).String(), "public_key", t.PublicKey().String())
			}
			if p.nextTry.Before(next) {
				next = p.nextTry
			}
			continue
		}
		after := RekeyAfterTime
		if !p.current.initiator {
			after += RekeyTimeout
		}
		if p.current.initiator && !p.current.heard {
			after = RekeyTimeout
		}
		if due := p.current.created.Add(after); due.Before(next) {
			next = due
		}
	}
	return next
}

// bucket is a token bucket of rate tokens a second, as deep.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.rate
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.rate, b.tokens+d*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// roundTrip is the RTT a datagram received at now measures, if it
// echoes one of ours: now, less our send time it echoes, less the time
// the peer held it. An echo from the future, or a hold longer than the
// round trip, measures nothing.
func roundTrip(b body, now uint64) (time.Duration, bool) {
	if b.echo == 0 || b.echo > now || now-b.echo < b.held {
		return 0, false
	}
	return time.Duration(now - b.echo - b.held), true
}

// clock reads the transport's monotonic clock: nanoseconds since New,
// never 0.
func (t *Transport) clock(now time.Time) uint64 { return uint64(max(now.Sub(t.start), 0)) + 1 }

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
