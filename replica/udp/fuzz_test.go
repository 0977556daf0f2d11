package udp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// FuzzDecode: whatever the bytes, decode neither panics nor accepts
// what it cannot give back: a payload it accepts re-encodes to the same
// bytes.
func FuzzDecode(f *testing.F) {
	es := []replica.Entry{{Channel: "orders", Role: rolefsm.Leader, Tail: 42}, {Channel: "p", Role: rolefsm.Replica, Tail: 1 << 40}}
	p := binary.AppendUvarint(nil, uint64(len(es)))
	for _, e := range es {
		p = appendEntry(p, e)
	}
	f.Add(appendReports(bytes.Clone(p), []replica.Report{{Node: 2, Age: 150 * time.Millisecond}, {Node: 3, Age: replica.NeverHeard}}))
	f.Add(appendReports(p, nil))
	f.Add([]byte{0, 0})
	f.Add([]byte{1, 0, 1, 0, 0})
	f.Add([]byte{0, 1, 1, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		got, rs, err := decode(p, nil)
		if err != nil {
			return
		}
		q := binary.AppendUvarint(nil, uint64(len(got)))
		for _, e := range got {
			q = appendEntry(q, e)
		}
		q = appendReports(q, rs)
		if !bytes.Equal(p, q) {
			t.Fatalf("accepted %x, re-encodes to %x", p, q)
		}
	})
}

// FuzzHandle: a transport with live sessions, fed any datagram from
// any address, never panics, never delivers what no peer sealed (only
// the seeds' own datagrams, once each), and still hears its peer
// afterwards: no datagram can silence a node.
func FuzzHandle(f *testing.F) {
	w := attackNet(f, 2)
	one, two := w.procs["1"].t, w.procs["2"].t
	flush := func() {
		for len(w.flight) > 0 {
			g := w.flight[0]
			w.flight = w.flight[1:]
			w.deliverOne(g)
		}
	}
	one.maintain(w.now)
	flush()
	send := func(seq uint64) []byte {
		if err := one.encode(w.now, one.peers[2], replica.Batch{Seq: seq, Entries: []replica.Entry{{Channel: "orders", Role: rolefsm.Leader, Tail: seq}}}); err != nil {
			f.Fatal(err)
		}
		d := w.flight[len(w.flight)-1].d
		w.flight = w.flight[:0]
		return d
	}
	seeds := map[string]bool{}
	for seq := uint64(1); seq <= 3; seq++ {
		d := send(seq)
		seeds[string(d)] = true
		f.Add(d, uint16(7000))
	}
	two.initiate(w.now, two.peers[1])
	init := w.flight[0].d
	w.flight = w.flight[:0]
	f.Add(init, uint16(7000))
	f.Add(append(appendPrefix(nil, typeResponse), make([]byte, ResponseSize-4)...), uint16(7000))
	f.Add(append(appendPrefix(nil, typePlain), make([]byte, 80)...), uint16(1))
	seq := uint64(100)
	f.Fuzz(func(t *testing.T, d []byte, port uint16) {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 1}), port)
		from, in, _, ok := two.handle(w.now, src, d)
		w.flight = w.flight[:0] // answers go nowhere
		if ok && from != 0 {
			if !seeds[string(d)] {
				t.Fatalf("delivered a datagram no peer sealed: %x", d)
			}
			two.in.recycle(in.Batch.Entries)
		}
		seq++
		good := send(seq)
		from, _, why, ok := two.handle(w.now, addrOf(1), good)
		if !ok || from != 1 {
			t.Fatalf("node 1 unheard after %x: %v", d, why)
		}
	})
}
