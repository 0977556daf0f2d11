package udp

// Receiving: every datagram checked, then delivered or dropped by reason.

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/rolefsm/rolefsm/replica"
)

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
		if from, in, _, ok := t.receive(t.now(), src, buf[:n]); ok && from != 0 && !t.in.push(from, in) {
			t.dropped[InboxFull].Add(1)
		}
	}
}

// receive handles one datagram from src under t.mu and counts it: a
// drop by its reason (and against the peer whose configured address
// src is), a delivery against its sender.
func (t *Transport) receive(now time.Time, src netip.AddrPort, d []byte) (replica.NodeID, replica.Inbound, Reason, bool) {
	t.mu.Lock()
	from, in, r, ok := t.handle(now, src, d)
	switch p := t.byAddr[src]; {
	case !ok && p != nil:
		p.dropped[r]++
	case ok && from != 0:
		t.peers[from].delivered++
	}
	t.mu.Unlock()
	if !ok {
		t.dropped[r].Add(1)
	}
	return from, in, r, ok
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
	es, rs, err := decode(rest, t.in.slab())
	if err != nil {
		t.in.recycle(es)
		return 0, none, Garbage, false
	}
	at := t.clock(now)
	if bd.sent > p.echo.sent {
		p.echo = echo{sent: bd.sent, at: at}
	}
	in := replica.Inbound{Batch: replica.Batch{From: p.id, Seq: bd.beat, Incarnation: p.epoch, Entries: es, Heard: rs}}
	in.RTT, in.HasRTT = roundTrip(bd, at)
	return p.id, in, 0, true
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
