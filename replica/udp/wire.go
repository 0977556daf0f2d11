// Package udp carries replica heartbeat batches between processes over
// UDP: a versioned binary format, sealed with AES-GCM under a cluster
// keyring (memberlist's model: send with the first key, accept any),
// with a replay window per sender and every dropped datagram counted by
// reason. It implements replica.Transport.
//
// Every key holder is trusted: a node that holds a cluster key can
// speak as any node id. The key protects the heartbeats from everyone
// else, not the nodes from each other.
package udp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// The wire format, version 1. All integers are big-endian.
//
//	offset size
//	0      2    magic "rf"
//	2      1    version, 1
//	3      1    flags: bit 0 set if sealed (AES-GCM), clear if plain
//	4      8    sender node id
//	12     8    receiver node id
//	20     8    incarnation: the sender's boot (unix nanoseconds)
//	28     8    sequence number of the datagram from the sender to this
//	            receiver in that incarnation, from 1
//	36     8    heartbeat number (replica.Batch.Seq), shared by its parts
//	44     8    send time: nanoseconds since the sender's boot
//	52     8    echo: the latest send time the sender received from the
//	            receiver, 0 if none
//	60     8    held: nanoseconds between receiving that and this send
//	68     12   nonce (zero when plain)
//	80     ...  payload; sealed, it is followed by a 16-byte tag, and the
//	            80 header bytes are its additional data
//
// The receiver id is authenticated with the rest of the header, so a
// datagram captured on its way to one node is refused by every other
// (misdirected), and each receiver's replay window sees every sequence
// number its sender used for it.
//
// The receiver measures the round trip as its clock now, less the echo,
// less the time held: both ends read only their own monotonic clocks.
//
// The payload is a uvarint count of entries, then per entry: a uvarint
// name length, the name, the role (one byte), the tail (uvarint).
const (
	Version    = 1
	HeaderSize = 80
	TagSize    = 16
	// DefaultMaxDatagram is the largest datagram sent and accepted: a
	// batch that does not fit is split into several.
	DefaultMaxDatagram = 1400
	// MaxChannelName bounds a channel name on the wire.
	MaxChannelName = 255

	flagSealed = 1
	nonceAt    = 68
	nonceSize  = 12
)

var magic = [2]byte{'r', 'f'}

// The reasons a datagram is dropped, each matched with errors.Is.
var (
	ErrTruncated   = errors.New("udp: truncated or garbage datagram")
	ErrVersion     = errors.New("udp: unknown version")
	ErrBadTag      = errors.New("udp: authentication failed")
	ErrOversize    = errors.New("udp: datagram too large")
	ErrReplayed    = errors.New("udp: replayed or stale datagram")
	ErrUnknownPeer = errors.New("udp: sender unknown")
	ErrMisdirected = errors.New("udp: datagram for another node")
)

// Header is a datagram's fixed part.
type Header struct {
	Version     uint8
	Sealed      bool
	From, To    replica.NodeID
	Incarnation uint64
	Seq         uint64
	Beat        uint64
	// Sent, Echo and Held carry the round-trip measurement: see the
	// wire format.
	Sent, Echo, Held uint64
}

// Keyring holds the cluster keys: datagrams are sealed with the first
// and opened with any, so a key can be rotated without downtime (add
// the new key second everywhere, then first, then drop the old one).
type Keyring struct {
	aeads []cipher.AEAD
}

// NewKeyring returns a keyring of AES-GCM keys of 16, 24 or 32 bytes,
// the first used for sending.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("udp: a keyring needs at least one key")
	}
	k := &Keyring{}
	for i, key := range keys {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("udp: key %d: %d bytes, want 16, 24 or 32", i+1, len(key))
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("udp: key %d: %w", i+1, err)
		}
		k.aeads = append(k.aeads, aead)
	}
	return k, nil
}

// ParseKeys reads a key file: one base64 key per line, the first the
// one sent with; blank lines and lines starting with # are skipped.
func ParseKeys(data []byte) (*Keyring, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("udp: key file line %d: not base64", i+1)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("udp: key file line %d: %d bytes, want 16, 24 or 32", i+1, n)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("udp: key file holds no key")
	}
	return NewKeyring(keys...)
}

// GenerateKey returns a new random 32-byte key, base64-encoded as a key
// file line.
func GenerateKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// appendEntry appends one entry's payload bytes.
func appendEntry(p []byte, e replica.Entry) []byte {
	p = binary.AppendUvarint(p, uint64(len(e.Channel)))
	p = append(p, e.Channel...)
	p = append(p, byte(e.Role))
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

// seal writes the header into dst[:HeaderSize], then the payload,
// sealed under keys' first key (plain if keys is nil), and returns the
// datagram.
func seal(dst []byte, h Header, payload []byte, keys *Keyring) ([]byte, error) {
	dst = append(dst[:0], magic[0], magic[1], Version, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.From))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.To))
	dst = binary.BigEndian.AppendUint64(dst, h.Incarnation)
	dst = binary.BigEndian.AppendUint64(dst, h.Seq)
	dst = binary.BigEndian.AppendUint64(dst, h.Beat)
	dst = binary.BigEndian.AppendUint64(dst, h.Sent)
	dst = binary.BigEndian.AppendUint64(dst, h.Echo)
	dst = binary.BigEndian.AppendUint64(dst, h.Held)
	dst = append(dst, make([]byte, nonceSize)...)
	if keys == nil {
		return append(dst, payload...), nil
	}
	dst[3] = flagSealed
	if _, err := rand.Read(dst[nonceAt : nonceAt+nonceSize]); err != nil {
		return nil, err
	}
	aead := keys.aeads[0]
	return aead.Seal(dst, dst[nonceAt:nonceAt+nonceSize], payload, dst[:HeaderSize]), nil
}

// Decode reads one datagram: its header, then its payload, opened with
// any key of keys (or plain, when keys is nil: then a sealed datagram
// is refused, as a plain one is when keys are given). The error says
// why a datagram is refused, matching one of the Err reasons. Decode
// never panics, whatever the bytes.
func Decode(b []byte, keys *Keyring, maxDatagram int) (Header, replica.Batch, error) {
	var h Header
	if len(b) > maxDatagram {
		return h, replica.Batch{}, fmt.Errorf("%w: %d bytes, at most %d", ErrOversize, len(b), maxDatagram)
	}
	if len(b) < HeaderSize || b[0] != magic[0] || b[1] != magic[1] {
		return h, replica.Batch{}, ErrTruncated
	}
	h.Version = b[2]
	if h.Version != Version {
		return h, replica.Batch{}, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	h.Sealed = b[3]&flagSealed != 0
	if b[3]&^flagSealed != 0 {
		return h, replica.Batch{}, ErrTruncated
	}
	h.From = replica.NodeID(binary.BigEndian.Uint64(b[4:]))
	h.To = replica.NodeID(binary.BigEndian.Uint64(b[12:]))
	h.Incarnation = binary.BigEndian.Uint64(b[20:])
	h.Seq = binary.BigEndian.Uint64(b[28:])
	h.Beat = binary.BigEndian.Uint64(b[36:])
	h.Sent = binary.BigEndian.Uint64(b[44:])
	h.Echo = binary.BigEndian.Uint64(b[52:])
	h.Held = binary.BigEndian.Uint64(b[60:])
	payload := b[HeaderSize:]
	switch {
	case keys == nil && h.Sealed, keys != nil && !h.Sealed:
		return h, replica.Batch{}, ErrBadTag
	case keys != nil:
		var opened []byte
		err := ErrBadTag
		for _, aead := range keys.aeads {
			if opened, err = aead.Open(nil, b[nonceAt:nonceAt+nonceSize], payload, b[:HeaderSize]); err == nil {
				break
			}
		}
		if err != nil {
			return h, replica.Batch{}, ErrBadTag
		}
		payload = opened
	}
	batch, err := decodePayload(payload)
	if err != nil {
		return h, replica.Batch{}, err
	}
	batch.From, batch.Seq, batch.Incarnation = h.From, h.Beat, h.Incarnation
	return h, batch, nil
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

func decodePayload(p []byte) (replica.Batch, error) {
	var b replica.Batch
	n, k := uvarint(p)
	if k == 0 || n > uint64(len(p)) { // an entry takes at least 3 bytes
		return b, ErrTruncated
	}
	p = p[k:]
	b.Entries = make([]replica.Entry, 0, n)
	for i := uint64(0); i < n; i++ {
		size, k := uvarint(p)
		if k == 0 || size > MaxChannelName || uint64(len(p)-k) < size+2 {
			return b, ErrTruncated
		}
		p = p[k:]
		e := replica.Entry{Channel: string(p[:size]), Role: rolefsm.Role(p[size])}
		p = p[size+1:]
		if e.Tail, k = uvarint(p); k == 0 {
			return b, ErrTruncated
		}
		p = p[k:]
		b.Entries = append(b.Entries, e)
	}
	if len(p) != 0 {
		return b, ErrTruncated
	}
	return b, nil
}

// window is one sender's replay window: the highest sequence number
// accepted in its latest incarnation, and which of the 64 below it were.
type window struct {
	incarnation, top, seen uint64
}

// accept reports whether (incarnation, seq) is new, and records it.
func (w *window) accept(incarnation, seq uint64) bool {
	switch {
	case seq == 0 || incarnation < w.incarnation:
		return false
	case incarnation > w.incarnation:
		w.incarnation, w.top, w.seen = incarnation, seq, 1
		return true
	case seq > w.top:
		if d := seq - w.top; d < 64 {
			w.seen = w.seen<<d | 1
		} else {
			w.seen = 1
		}
		w.top = seq
		return true
	}
	d := w.top - seq
	if d >= 64 || w.seen&(1<<d) != 0 {
		return false
	}
	w.seen |= 1 << d
	return true
}
