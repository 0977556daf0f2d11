// Package udp carries replica heartbeat batches between processes over
// UDP, each node speaking only as itself: every node has its own static
// X25519 key pair, a Noise IK handshake per peer pair and boot gives
// fresh session keys, and every datagram after it is sealed with
// ChaCha20-Poly1305 under a counter nonce, with a sliding replay window
// per session. WireGuard is the model (see docs/replicas.md for the
// trust model and the threat table). It implements replica.Transport.
//
// Whoever holds a node's private key can speak as that node and as no
// other; a stranger, on the path or off it, can drop datagrams but not
// forge, replay or redirect one.
package udp

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// The wire format, version 3. Every message starts with the magic
// "rf", the version and the message type; integers are big-endian.
//
// Initiation (type 1, 128 bytes), Noise IK's first message:
//
//	0   4   "rf", 3, 1
//	4   4   sender index: the initiator's id for the session
//	8   32  ephemeral public key
//	40  48  static public key, encrypted
//	88  24  payload, encrypted: the initiator's boot (8 random bytes)
//	112 16  mac1: keyed BLAKE2s-128 of the bytes before it, under
//	        HASH("mac1----" || the responder's public key)
//
// Response (type 2, 84 bytes), Noise IK's second message:
//
//	0   4   "rf", 3, 2
//	4   4   sender index: the responder's id for the session
//	8   4   receiver index: the initiator's
//	12  32  ephemeral public key
//	44  24  payload, encrypted: the responder's boot
//	68  16  mac1, under the initiator's public key
//
// Data (type 4), a session's datagram:
//
//	0   4   "rf", 3, 4
//	4   4   receiver index
//	8   8   counter: the AEAD nonce, from 0, never repeated
//	16  ... ChaCha20-Poly1305 of the body, the 16 bytes before it as
//	        additional data, and a 16-byte tag
//
// Plain (type 5), a datagram of a transport run Insecure: in the clear,
// unauthenticated:
//
//	0   4   "rf", 3, 5
//	4   8   sender node id
//	12  8   receiver node id
//	20  8   sender's boot
//	28  8   counter
//	36  ... body
//
// The body: kind (1 byte: 0 heartbeat, 1 keep-alive, 2 notice), the
// heartbeat number (replica.Batch.Seq), the send time (nanoseconds on
// the sender's monotonic clock), the echo (the latest send time the
// sender received from the receiver, 0 if none) and the held time
// (nanoseconds between receiving that and this send), 8 bytes each;
// then, for a heartbeat, a uvarint count of entries and per entry a
// uvarint name length, the name, the role (one byte: its high bit is
// replica.Entry.HasLeader) and the tail (uvarint), then a uvarint count
// of reports (replica.Batch.Heard,
// repeated in every part of a split heartbeat) and per report the node
// id and the age in microseconds plus one, 0 for a node never heard
// (both uvarints); for a notice, the address of the other process that
// speaks with the receiver's key. Every uvarint is minimally encoded.
// Version 3 added the reports.
const (
	Version = 3
	// TagSize is the AEAD tag's size.
	TagSize = 16
	// DataHeaderSize is a data datagram's header, before the sealed
	// body.
	DataHeaderSize = 16
	// BodyHeaderSize is the body's fixed part, before the entries.
	BodyHeaderSize = 33
	// Overhead is a sealed heartbeat datagram's size less its entries'
	// and its reports' (their count included: one byte).
	Overhead = DataHeaderSize + BodyHeaderSize + TagSize + 1
	// InitiationSize and ResponseSize are the handshake messages'.
	InitiationSize = 128
	ResponseSize   = 84
	// PlainHeaderSize is an insecure datagram's header.
	PlainHeaderSize = 36
	// DefaultMaxDatagram is the largest datagram sent and accepted: a
	// batch that does not fit is split into several.
	DefaultMaxDatagram = 1400
	// MaxChannelName bounds a channel name on the wire.
	MaxChannelName = 255
	// MaxReports bounds the reports a heartbeat datagram carries: a
	// node with more peers reports the first MaxReports by id.
	MaxReports = 64
)

// The message types.
const (
	typeInitiation = 1
	typeResponse   = 2
	typeData       = 4
	typePlain      = 5
)

// The body's kinds.
const (
	kindHeartbeat = 0
	kindKeepalive = 1
	kindNotice    = 2
)

// body is a datagram body's fixed part.
type body struct {
	kind                   byte
	beat, sent, echo, held uint64
}

func appendBody(p []byte, b body) []byte {
	p = append(p, b.kind)
	p = binary.BigEndian.AppendUint64(p, b.beat)
	p = binary.BigEndian.AppendUint64(p, b.sent)
	p = binary.BigEndian.AppendUint64(p, b.echo)
	return binary.BigEndian.AppendUint64(p, b.held)
}

func parseBody(p []byte) (body, []byte, error) {
	if len(p) < BodyHeaderSize || p[0] > kindNotice {
		return body{}, nil, errTruncated
	}
	return body{kind: p[0], beat: binary.BigEndian.Uint64(p[1:]), sent: binary.BigEndian.Uint64(p[9:]),
		echo: binary.BigEndian.Uint64(p[17:]), held: binary.BigEndian.Uint64(p[25:])}, p[BodyHeaderSize:], nil
}

// appendEntry appends one entry's payload bytes.
func appendEntry(p []byte, e replica.Entry) []byte {
	p = binary.AppendUvarint(p, uint64(len(e.Channel)))
	p = append(p, e.Channel...)
	role := byte(e.Role) & roleMask
	if e.HasLeader {
		role |= hasLeader
	}
	p = append(p, role)
	return binary.AppendUvarint(p, e.Tail)
}

// entrySize is the bytes appendEntry adds.
func entrySize(e replica.Entry) int {
	return uvarintLen(uint64(len(e.Channel))) + len(e.Channel) + 1 + uvarintLen(e.Tail)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// uvarint reads a minimally encoded uvarint: one encoding per value, so
// that a datagram has one meaning.
func uvarint(p []byte) (uint64, int) {
	v, k := binary.Uvarint(p)
	if k <= 0 || k != uvarintLen(v) {
		return 0, 0
	}
	return v, k
}

// The role byte: the role in its low seven bits, and Entry.HasLeader in
// the high one.
const (
	roleMask  = 0x7f
	hasLeader = 0x80
)

// maxEntrySize is the largest entry: a name of MaxChannelName bytes,
// the role and a tail of ten bytes.
var maxEntrySize = uvarintLen(MaxChannelName) + MaxChannelName + 1 + uvarintLen(1<<64-1)

// minEntrySize is the smallest entry: a name of one byte (names are
// never empty), the role and a one-byte tail.
const minEntrySize = 4

// appendReports appends a heartbeat's reports, at most MaxReports.
func appendReports(p []byte, rs []replica.Report) []byte {
	rs = rs[:min(len(rs), MaxReports)]
	p = binary.AppendUvarint(p, uint64(len(rs)))
	for _, r := range rs {
		p = binary.AppendUvarint(p, uint64(r.Node))
		p = binary.AppendUvarint(p, ageCode(r.Age))
	}
	return p
}

// reportsSize is the bytes appendReports adds but the count (one byte:
// MaxReports is below 128).
func reportsSize(rs []replica.Report) int {
	rs = rs[:min(len(rs), MaxReports)]
	n := 0
	for _, r := range rs {
		n += uvarintLen(uint64(r.Node)) + uvarintLen(ageCode(r.Age))
	}
	return n
}

// ageCode is an age on the wire: microseconds plus one, 0 for never.
func ageCode(age time.Duration) uint64 {
	if age == replica.NeverHeard || age < 0 {
		return 0
	}
	return uint64(age/time.Microsecond) + 1
}

// maxAgeCode is the largest ageCode: decode refuses any above it, so
// that a datagram has one meaning.
const maxAgeCode = uint64(replica.NeverHeard/time.Microsecond) + 1

// ageOf reads an ageCode up to maxAgeCode.
func ageOf(code uint64) time.Duration {
	if code == 0 {
		return replica.NeverHeard
	}
	return time.Duration(code-1) * time.Microsecond
}

// decode parses a heartbeat's entries into es[:0] (reused when large
// enough) and its reports. It checks the whole payload before it keeps
// anything, so a bad one costs no allocation; a good one costs one: a
// string of the entries' bytes that the names are cut from, and one
// more for the reports if there are any (at most MaxReports: 1 KiB for
// as few as 129 bytes). So decoding never allocates more than the bytes
// received for the entries, plus that (the entries' slice is the
// transport's to reuse).
func decode(p []byte, es []replica.Entry) ([]replica.Entry, []replica.Report, error) {
	n, k := uvarint(p)
	if k == 0 || n > uint64(len(p)-k)/minEntrySize {
		return es[:0], nil, errTruncated
	}
	rest := p[k:]
	for i := uint64(0); i < n; i++ { // first pass: the shape only
		size, k := uvarint(rest)
		if k == 0 || size == 0 || size > MaxChannelName || uint64(len(rest)-k) < size+2 {
			return es[:0], nil, errTruncated
		}
		rest = rest[k+int(size)+1:]
		if _, k = uvarint(rest); k == 0 {
			return es[:0], nil, errTruncated
		}
		rest = rest[k:]
	}
	entries := p[k : len(p)-len(rest)]
	nr, k2 := uvarint(rest)
	if k2 == 0 || nr > MaxReports {
		return es[:0], nil, errTruncated
	}
	reports := rest[k2:]
	for i := uint64(0); i < nr; i++ {
		id, k := uvarint(reports)
		if k == 0 || id == 0 {
			return es[:0], nil, errTruncated
		}
		code, k2 := uvarint(reports[k:])
		if k2 == 0 || code > maxAgeCode {
			return es[:0], nil, errTruncated
		}
		reports = reports[k+k2:]
	}
	if len(reports) != 0 {
		return es[:0], nil, errTruncated
	}
	es = es[:0]
	if uint64(cap(es)) < n {
		es = make([]replica.Entry, 0, n)
	}
	if n > 0 {
		all := string(entries)
		for off := 0; off < len(all); {
			size, k := uvarint(entries[off:])
			off += k
			b := all[off+int(size)]
			e := replica.Entry{Channel: all[off : off+int(size)], Role: rolefsm.Role(b & roleMask), HasLeader: b&hasLeader != 0}
			off += int(size) + 1
			e.Tail, k = uvarint(entries[off:])
			off += k
			es = append(es, e)
		}
	}
	var rs []replica.Report
	if nr > 0 {
		rs = make([]replica.Report, 0, nr)
		for q := rest[k2:]; len(q) > 0; {
			id, k := uvarint(q)
			code, k2 := uvarint(q[k:])
			q = q[k+k2:]
			rs = append(rs, replica.Report{Node: replica.NodeID(id), Age: ageOf(code)})
		}
	}
	return es, rs, nil
}

// checkName refuses a channel name the wire cannot carry.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrChannelName)
	case len(name) > MaxChannelName:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrChannelName, len(name), MaxChannelName)
	}
	return nil
}
