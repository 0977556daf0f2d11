package udp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// One heartbeat interval of a node that holds many channels with four
// peers, in process: its ten ticks, encoding and sealing what they send,
// and opening, decoding and stepping what its four peers send it. The
// sockets are left out (the failover benchmark's steady state measures
// real processes). One op is one interval.

const (
	peersN   = 4
	interval = 500 * time.Millisecond
	ticks    = 10 // the driver's default tick: a tenth of the interval
)

// intervalRig is a node 1 leading every channel, peers 2 to 5 that
// follow it, and the transports that carry their heartbeats, built
// without sockets: what one writes is handed to the other by hand.
type intervalRig struct {
	node  *replica.Node
	self  *Transport            // node 1's
	peers [peersN]*Transport    // the peers', for encoding what they send
	beats [peersN]replica.Batch // each peer's heartbeat to node 1
	in    [peersN][][]byte      // the datagrams of the interval's heartbeats
	out   [][]byte              // what a transport wrote, until handed on
	sent  int                   // node 1's datagrams and bytes this interval
	bytes int
	now   time.Time
	keyed time.Time // when the sessions were last made
}

func newIntervalRig(b *testing.B, channels int) *intervalRig {
	b.Helper()
	hb, err := policy.NewHeartbeat(interval, 3)
	if err != nil {
		b.Fatal(err)
	}
	r := &intervalRig{now: time.Unix(1000, 0)}
	if r.node, err = replica.NewNode(replica.Config{ID: 1, Heartbeat: hb, Policy: policy.HighestTail}, r.now); err != nil {
		b.Fatal(err)
	}
	keys := nodeKeys(b, 1, 2, 3, 4, 5)
	transport := func(id replica.NodeID) *Transport {
		peers := map[replica.NodeID]Peer{}
		for p := replica.NodeID(1); p <= peersN+1; p++ {
			if p != id {
				peers[p] = Peer{Addr: addrOf(p).String(), Keys: []PublicKey{keys[p].Public()}}
			}
		}
		t, err := build(Config{ID: id, Key: keys[id], Peers: peers, Inbox: 1 << 16, Logger: quiet,
			Now: func() time.Time { return r.now }})
		if err != nil {
			b.Fatal(err)
		}
		t.write = func(d []byte, _ netip.AddrPort) error {
			if id == 1 {
				r.sent++
				r.bytes += len(d)
			}
			r.out = append(r.out, append([]byte(nil), d...))
			return nil
		}
		return t
	}
	r.self = transport(1)
	for i := range r.peers {
		r.peers[i] = transport(replica.NodeID(i + 2))
		r.beats[i].Entries = make([]replica.Entry, channels)
	}
	r.handshakes(b)
	ctx := context.Background()
	for c := 0; c < channels; c++ {
		name := fmt.Sprintf("ch%06d", c+1)
		if err := r.node.Open(ctx, r.now, replica.ChannelConfig{Name: name, Replicas: []replica.NodeID{1, 2, 3, 4, 5}}); err != nil {
			b.Fatal(err)
		}
		for i := range r.beats {
			r.beats[i].Entries[c] = replica.Entry{Channel: name, Role: rolefsm.Replica}
		}
	}
	// Warm up until node 1 leads every channel (the peers say Replica
	// and it has the lowest id), and every buffer has grown.
	for range 6 {
		r.prepare(b)
		r.interval(b)
	}
	for _, name := range []string{"ch000001", fmt.Sprintf("ch%06d", channels)} {
		if st, _ := r.node.Status(name); st.Role != rolefsm.Leader {
			b.Fatalf("%s: %v after the warm-up, want Leader", name, st.Role)
		}
	}
	return r
}

// handshakes makes new sessions between node 1 and each peer, by hand:
// node 1's initiation, the response, the keep-alive that confirms it,
// and the one that answers that.
func (r *intervalRig) handshakes(b *testing.B) {
	for i := range r.peers {
		r.self.initiate(r.now, r.self.peers[replica.NodeID(i+2)])
		r.pass(b, r.peers[i], addrOf(1))
		r.pass(b, r.self, addrOf(replica.NodeID(i+2)))
		r.pass(b, r.peers[i], addrOf(1))
		r.pass(b, r.self, addrOf(replica.NodeID(i+2)))
	}
	r.keyed = r.now
}

// pass hands what was written to t, from src, and fails on any drop.
func (r *intervalRig) pass(b *testing.B, t *Transport, src netip.AddrPort) {
	out := r.out
	r.out = nil
	for _, d := range out {
		if _, _, why, ok := t.handle(r.now, src, d); !ok {
			b.Fatalf("handshake datagram dropped: %v", why)
		}
	}
}

// prepare encodes the peers' heartbeats of the next interval: their
// cost, not node 1's. The rig's clock runs 500 ms an op, so a long run
// would reach the sessions' rekey time, and a transport would start a
// handshake inside the interval: the sessions are made again, outside
// the timer, well before that.
func (r *intervalRig) prepare(b *testing.B) {
	if r.now.Sub(r.keyed) >= RekeyAfterTime/2 {
		r.handshakes(b)
	}
	for i, p := range r.peers {
		r.beats[i].Seq++
		r.out = nil
		if err := p.encode(r.now, p.peers[1], r.beats[i]); err != nil {
			b.Fatal(err)
		}
		r.in[i] = r.out
	}
	r.out = nil
}

// interval runs node 1's share of one interval and returns the
// datagrams and bytes it sent.
func (r *intervalRig) interval(b *testing.B) (datagrams, size int) {
	ctx := context.Background()
	r.sent, r.bytes = 0, 0
	for range ticks {
		r.now = r.now.Add(interval / ticks)
		for _, m := range r.node.Tick(ctx, r.now) {
			if err := r.self.encode(r.now, r.self.peers[m.To], m.Batch); err != nil {
				b.Fatal(err)
			}
			r.out = r.out[:0]
		}
	}
	for i := range r.in {
		src := addrOf(replica.NodeID(i + 2))
		for _, d := range r.in[i] {
			from, in, why, ok := r.self.handle(r.now, src, d)
			if !ok {
				b.Fatalf("datagram dropped: %v", why)
			}
			if from == 0 {
				b.Fatalf("a datagram from node %d that is no heartbeat (a handshake?)", i+2)
			}
			if err := r.node.Step(ctx, r.now, in.Batch); err != nil {
				b.Fatal(err)
			}
			if from != replica.NodeID(i+2) {
				b.Fatalf("a batch from node %d, want %d", from, i+2)
			}
			r.self.in.recycle(in.Batch.Entries)
		}
	}
	return r.sent, r.bytes
}

// BenchmarkNodeInterval: one interval of a node with n channels and
// four peers. It reports the interval's CPU in ms, and what the node
// sends each peer.
func BenchmarkNodeInterval(b *testing.B) {
	for _, n := range []int{1, 1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			r := newIntervalRig(b, n)
			var datagrams, size int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r.prepare(b)
				b.StartTimer()
				datagrams, size = r.interval(b)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/interval")
			b.ReportMetric(float64(datagrams)/peersN, "datagrams/peer")
			b.ReportMetric(float64(size)/peersN, "bytes/peer")
			b.ReportMetric(float64(n)/(float64(datagrams)/peersN), "channels/datagram")
		})
	}
}

// BenchmarkBaselineSealOpen is the AEAD's share of the same interval
// with 10,000 channels: sealing the datagrams the node sends and
// opening those it receives, nothing else.
func BenchmarkBaselineSealOpen(b *testing.B) {
	r := newIntervalRig(b, 10_000)
	r.prepare(b)
	s := r.self.peers[2].current
	var out [][]byte
	for _, m := range r.node.Tick(context.Background(), r.now.Add(interval)) {
		r.out = nil
		_ = r.self.encode(r.now, r.self.peers[m.To], m.Batch)
		out = append(out, r.out...)
	}
	if len(out) == 0 {
		b.Fatal("no heartbeat sent")
	}
	buf := make([]byte, 0, 2048)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, d := range out {
			buf = s.send.Encrypt(buf[:0], 1, d[:DataHeaderSize], d[DataHeaderSize:len(d)-TagSize])
		}
		for p := range r.in {
			recv := r.self.peers[replica.NodeID(p+2)].current.recv
			for _, d := range r.in[p] {
				if _, err := recv.Decrypt(buf[:0], binary.BigEndian.Uint64(d[8:]), d[:DataHeaderSize], d[DataHeaderSize:]); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/interval")
}

// BenchmarkRestartedNodeHeard: node 2's process restarts (a new
// transport with its key) and sends one heartbeat; one op is the time
// until node 1 has it, under the new incarnation: the handshake's round
// trip on loopback and the heartbeat that waited for it. The goal is
// one round trip past the first send. Node 1 is new each op too (its
// handshake rate limit would otherwise be what is measured).
func BenchmarkRestartedNodeHeard(b *testing.B) {
	keys := nodeKeys(b, 1, 2)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		c1, c2 := listen(b), listen(b)
		one, err := New(Config{ID: 1, Conn: c1, Key: keys[1], Logger: quiet,
			Peers: map[replica.NodeID]Peer{2: {Addr: c2.LocalAddr().String(), Keys: []PublicKey{keys[2].Public()}}}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		two, err := New(Config{ID: 2, Conn: c2, Key: keys[2], Logger: quiet,
			Peers: map[replica.NodeID]Peer{1: {Addr: c1.LocalAddr().String(), Keys: []PublicKey{keys[1].Public()}}}})
		if err != nil {
			b.Fatal(err)
		}
		if err := two.Send(ctx, 1, replica.Batch{Seq: 1}); err != nil {
			b.Fatal(err)
		}
		if in := <-one.Inbox(); in.Batch.From != 2 || in.Batch.Seq != 1 {
			b.Fatalf("got %+v", in.Batch)
		}
		b.StopTimer()
		_ = two.Close()
		_ = one.Close()
		b.StartTimer()
	}
}
