package udp

import (
	"context"
	"crypto/rand"
	"fmt"
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
// follow it, and the transports that carry their heartbeats.
type intervalRig struct {
	node  *replica.Node
	self  *Transport            // node 1's, for encoding and accepting
	peers [peersN]*Transport    // the peers', for encoding what they send
	beats [peersN]replica.Batch // each peer's heartbeat to node 1
	in    [peersN][][]byte      // the datagrams of the interval's heartbeats
	now   time.Time
}

func newIntervalRig(b *testing.B, channels int) *intervalRig {
	b.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		b.Fatal(err)
	}
	keys, err := NewKeyring(key)
	if err != nil {
		b.Fatal(err)
	}
	hb, err := policy.NewHeartbeat(interval, 3)
	if err != nil {
		b.Fatal(err)
	}
	r := &intervalRig{now: time.Unix(1000, 0)}
	if r.node, err = replica.NewNode(replica.Config{ID: 1, Heartbeat: hb, Policy: policy.HighestTail}, r.now); err != nil {
		b.Fatal(err)
	}
	all := map[replica.NodeID]string{}
	for id := replica.NodeID(1); id <= peersN+1; id++ {
		all[id] = "127.0.0.1:9" // never written to: encode only
	}
	transport := func(id replica.NodeID) *Transport {
		peers := map[replica.NodeID]string{}
		for p, a := range all {
			if p != id {
				peers[p] = a
			}
		}
		t, err := New(Config{ID: id, Listen: "127.0.0.1:0", Keys: keys, Peers: peers, Inbox: 1 << 16, Incarnation: 7})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = t.Close() })
		return t
	}
	r.self = transport(1)
	for i := range r.peers {
		r.peers[i] = transport(replica.NodeID(i + 2))
		r.beats[i].Entries = make([]replica.Entry, channels)
	}
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
		r.interval(b)
	}
	for _, name := range []string{"ch000001", fmt.Sprintf("ch%06d", channels)} {
		if st, _ := r.node.Status(name); st.Role != rolefsm.Leader {
			b.Fatalf("%s: %v after the warm-up, want Leader", name, st.Role)
		}
	}
	return r
}

// prepare encodes the peers' heartbeats of the next interval: their
// cost, not node 1's.
func (r *intervalRig) prepare(b *testing.B) {
	for i, p := range r.peers {
		r.beats[i].Seq++
		r.in[i] = r.in[i][:0]
		p.mu.Lock()
		err := p.encode(1, r.beats[i], func(d []byte) error {
			r.in[i] = append(r.in[i], append([]byte(nil), d...))
			return nil
		})
		p.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// interval runs node 1's share of one interval and returns the
// datagrams and bytes it sent.
func (r *intervalRig) interval(b *testing.B) (datagrams, size int) {
	ctx := context.Background()
	r.self.mu.Lock()
	for range ticks {
		r.now = r.now.Add(interval / ticks)
		for _, m := range r.node.Tick(ctx, r.now) {
			if err := r.self.encode(m.To, m.Batch, func(d []byte) error {
				datagrams++
				size += len(d)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	r.self.mu.Unlock()
	for i := range r.in {
		for _, d := range r.in[i] {
			if why, ok := r.self.accept(d); !ok {
				b.Fatalf("datagram dropped: %v", why)
			}
		}
	}
	for len(r.self.inbox) > 0 {
		in := <-r.self.inbox
		if err := r.node.Step(ctx, r.now, in.Batch); err != nil {
			b.Fatal(err)
		}
	}
	return datagrams, size
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
	var out [][]byte
	r.self.mu.Lock()
	for _, m := range r.node.Tick(context.Background(), r.now.Add(interval)) {
		_ = r.self.encode(m.To, m.Batch, func(d []byte) error { out = append(out, append([]byte(nil), d...)); return nil })
	}
	r.self.mu.Unlock()
	if len(out) == 0 {
		b.Fatal("no heartbeat sent")
	}
	aead := r.self.cfg.Keys.aeads[0]
	buf := make([]byte, 0, 2048)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, d := range out {
			buf = aead.Seal(buf[:0], d[nonceAt:nonceAt+nonceSize], d[HeaderSize:len(d)-TagSize], d[:HeaderSize])
		}
		for _, in := range r.in {
			for _, d := range in {
				if _, err := aead.Open(buf[:0], d[nonceAt:nonceAt+nonceSize], d[HeaderSize:], d[:HeaderSize]); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/interval")
}
