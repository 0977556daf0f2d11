package udp

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// FuzzDecode: whatever the bytes, Decode neither panics nor accepts
// what it cannot give back: a datagram it accepts re-encodes to the
// same payload, under the same header.
func FuzzDecode(f *testing.F) {
	keys := keyring(f, 1)
	es := []replica.Entry{{Channel: "orders", Role: rolefsm.Leader, Tail: 42}, {Channel: "p", Role: rolefsm.Replica, Tail: 1 << 40}}
	for _, sealed := range []bool{true, false} {
		k := keys
		if !sealed {
			k = nil
		}
		f.Add(datagram(f, Header{From: 1, Incarnation: 5, Seq: 1, Beat: 1}, es, k), sealed)
		f.Add(datagram(f, Header{From: 2, Incarnation: 5, Seq: 9}, nil, k), sealed)
	}
	f.Add([]byte("rf\x01\x00"), false)
	f.Fuzz(func(t *testing.T, d []byte, sealed bool) {
		k := keys
		if !sealed {
			k = nil
		}
		h, b, err := Decode(d, k, DefaultMaxDatagram)
		if err != nil {
			return
		}
		if b.From != h.From || b.Seq != h.Beat {
			t.Fatalf("batch %d/%d, header %d/%d", b.From, b.Seq, h.From, h.Beat)
		}
		if sealed {
			return // the payload is sealed: compare what re-encodes below only in the clear
		}
		var p []byte
		p = binary.AppendUvarint(p, uint64(len(b.Entries)))
		for _, e := range b.Entries {
			p = appendEntry(p, e)
		}
		if !bytes.Equal(p, d[HeaderSize:]) {
			t.Fatalf("accepted %x, re-encodes to %x", d[HeaderSize:], p)
		}
	})
}
