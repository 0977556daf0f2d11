package udp

// Sessions: a peer, its sessions and boots, and what it is told.

import (
	"net/netip"
	"slices"
	"time"

	"github.com/flynn/noise"

	"github.com/rolefsm/rolefsm/replica"
)

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
	limiter    bucket             // handshakes from its configured address, and responses to ours
	dropped    [NumReasons]uint64 // datagrams from its configured address dropped, by reason
	delivered  uint64             // batches of its delivered
}

// echo is the latest send time heard from a peer, and when it arrived
// here, to echo back.
type echo struct{ sent, at uint64 }

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
