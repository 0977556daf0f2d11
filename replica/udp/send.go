package udp

// Sending: sealing heartbeats under a session, and starting handshakes.

import (
	"context"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/rolefsm/rolefsm/replica"
)

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
		room = t.max - PlainHeaderSize - BodyHeaderSize - 1
	}
	s := t.sendSession(now, p)
	if s == nil {
		p.queue = p.queue[:0] // the newest heartbeat replaces the ones waiting
	}
	entries := b.Entries
	// The reports go in every part, so that each stands alone: as many
	// as fit half a datagram and leave room for the largest entry the
	// wire carries beside them (all of them but in a cluster of dozens of
	// peers or at a small MaxDatagram), the lowest ids first. An entry
	// that fits a datagram alone still goes, with fewer reports or none.
	budget := min(room/2, room-1-maxEntrySize) // one byte of count, and the largest entry the wire takes
	heard := b.Heard[:min(len(b.Heard), MaxReports)]
	for len(heard) > 0 && reportsSize(heard) > budget {
		heard = heard[:len(heard)-1]
	}
	room -= reportsSize(heard)
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
		bd = appendReports(bd, heard)
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
