package udp

// Attacks a security review found against the first version of this
// transport, each pinned now: every one of these tests failed then.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

func attackNet(t testing.TB, n int) *wireNet {
	w := &wireNet{now: time.Unix(1_000_000, 0), procs: map[string]*proc{}, keys: map[replica.NodeID]PrivateKey{}}
	w.n = n
	for id := replica.NodeID(1); int(id) <= n; id++ {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		w.keys[id] = k
	}
	for id := replica.NodeID(1); int(id) <= n; id++ {
		w.start(t, strconv.Itoa(int(id)), id, addrOf(id), id, 0, 0, false)
	}
	return w
}

// pump delivers everything in flight (and what that sends); drop says
// which datagrams to lose instead.
func (w *wireNet) pump(drop func(dgram) bool) []string {
	var out []string
	for i := 0; i < 10000 && len(w.flight) > 0; i++ {
		g := w.flight[0]
		w.flight = w.flight[1:]
		if drop != nil && drop(g) {
			out = append(out, fmt.Sprintf("%s → %s %s: lost", w.name(g.from), w.name(g.to), typeOf(g.d)))
			continue
		}
		out = append(out, w.deliverOne(g))
	}
	return out
}

func (w *wireNet) tickAll() {
	for _, p := range w.procs {
		p.t.mu.Lock()
		p.t.maintain(w.now)
		p.t.mu.Unlock()
	}
}

func (w *wireNet) send(t testing.TB, from string, to replica.NodeID, seq uint64, es ...replica.Entry) {
	if err := w.procs[from].t.Send(context.Background(), to, replica.Batch{Seq: seq, Entries: es}); err != nil {
		t.Fatal(err)
	}
}

// heard reports whether node 2 got a heartbeat of node 1's in lines.
func heard(lines []string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, "1 → 2 data") && strings.Contains(l, "heartbeat") {
			return true
		}
	}
	return false
}

// garbageInitiation is 128 bytes with a valid mac1 for pub: anyone who
// knows pub can make one. It fails the Diffie-Hellman, but only after
// it took a rate-limit token.
func garbageInitiation(pub PublicKey) []byte {
	d := appendPrefix(nil, typeInitiation)
	junk := make([]byte, InitiationSize-16-4)
	_, _ = rand.Read(junk)
	d = append(d, junk...)
	key := macKey(pub)
	m := mac1(&key, d)
	return append(d, m[:]...)
}

// Once, one handshake bucket served every peer's address. A flood of 200 garbage initiations a second with node 3's source
// address (node 3 itself, or anyone spoofing it) takes all of node 2's
// handshake tokens: node 1's rekey with node 2 is refused, in both
// directions, and once the sessions expired node 1 and node 2 did not
// hear each other for as long as the flood lasted. Now each peer has
// its own bucket.
func TestFloodWithOnePeersAddressSparesTheOthers(t *testing.T) {
	w := attackNet(t, 3)
	w.tickAll()
	w.pump(nil)
	two := w.procs["2"]
	spoofed := addrOf(3)
	lastHeard, start := w.now, w.now
	var gaps []string
	for step := 0; step < 300*100; step++ { // 300 s in steps of 10 ms
		if w.now.Sub(start) >= 100*time.Second { // the flood starts at 100 s
			for range 2 {
				w.flight = append(w.flight, dgram{from: spoofed, to: two.addr, d: garbageInitiation(two.t.PublicKey())})
			}
		}
		if step%100 == 0 {
			w.send(t, "1", 2, uint64(step/100+1), replica.Entry{Channel: "orders", Role: rolefsm.Leader, Tail: 1})
			w.send(t, "2", 1, uint64(step/100+1), replica.Entry{Channel: "orders", Role: rolefsm.Replica, Tail: 1})
			w.tickAll()
		}
		lines := w.pump(nil)
		if heard(lines) {
			if gap := w.now.Sub(lastHeard); gap > 5*time.Second {
				gaps = append(gaps, fmt.Sprintf("unheard from %v to %v", lastHeard.Sub(start), w.now.Sub(start)))
			}
			lastHeard = w.now
		}
		w.now = w.now.Add(10 * time.Millisecond)
	}
	if gap := w.now.Sub(lastHeard); gap > 5*time.Second {
		gaps = append(gaps, fmt.Sprintf("unheard from %v to the end (%v)", lastHeard.Sub(start), w.now.Sub(start)))
	}
	s := two.t.Stats()
	t.Logf("node 2: rate_limited=%d unknown_session=%d expired=%d handshakes answered=%d completed=%d",
		s.Dropped[RateLimited], s.Dropped[UnknownSession], s.Dropped[Expired], s.HandshakesAnswered, s.HandshakesCompleted)
	for _, g := range gaps {
		t.Errorf("node 2 did not hear node 1 (a flood with node 3's address only): %s", g)
	}
}

// Once: after node 1 restarted, an on-path attacker delayed its
// first two initiations (the retries are new to node 2), forwards the
// third, and then the two delayed ones: node 2 answers all three, and
// the two late unconfirmed sessions push the legitimate one out. Node
// 1's session is confirmed at its end (an initiator's is at once), so
// it sends under it; node 2 drops all of it as unknown_session until
// node 2's own rekey of the old session, up to RekeyAfterTime +
// RekeyTimeout later. Neither side heard the other meanwhile. Now a
// responder answers the datagram that confirms its session with a
// keep-alive, and an initiator that hears nothing under its session
// for RekeyTimeout starts another handshake.
func TestReorderedRetriesCannotSilenceARestartedNode(t *testing.T) {
	w := attackNet(t, 2)
	w.tickAll()
	w.pump(nil)
	start := w.now
	w.now = w.now.Add(10 * time.Second)
	delete(w.procs, "1")
	w.start(t, "1", 1, addrOf(1), 1, 0, 0, false) // node 1 restarts
	var held []dgram
	hold := func(g dgram) bool {
		if typeOf(g.d) == "initiation" && g.to == addrOf(2) && len(held) < 2 {
			held = append(held, g)
			return true
		}
		return false
	}
	w.tickAll() // New's first handshake
	t.Log(w.pump(hold))
	for len(held) < 2 || len(w.flight) == 0 {
		w.now = w.now.Add(300 * time.Millisecond)
		w.tickAll() // the retries
		if len(held) < 2 {
			t.Log(w.pump(hold))
		}
	}
	// The third initiation is in flight: deliver it (node 2 answers),
	// then the two held back, then node 2's response.
	w.flight = append(w.flight[:1], append(held, w.flight[1:]...)...)
	t.Log(w.pump(nil))
	restarted := w.now
	lastHeard := time.Time{}
	for i := 0; i < 200; i++ {
		w.now = w.now.Add(time.Second)
		w.send(t, "1", 2, uint64(i+1), replica.Entry{Channel: "orders", Role: rolefsm.Leader, Tail: 1})
		w.send(t, "2", 1, uint64(i+1), replica.Entry{Channel: "orders", Role: rolefsm.Replica, Tail: 1})
		w.tickAll()
		lines := w.pump(nil)
		if i < 2 {
			t.Log(lines)
		}
		if heard(lines) {
			lastHeard = w.now
			break
		}
	}
	switch {
	case lastHeard.IsZero():
		t.Errorf("node 2 never heard the restarted node 1")
	case lastHeard.Sub(restarted) > 10*time.Second:
		t.Errorf("node 2 first heard the restarted node 1 %v after its handshake (cluster time %v)",
			lastHeard.Sub(restarted), lastHeard.Sub(start))
	}
	t.Logf("node 2: %+v", w.procs["2"].t.Stats().Dropped)
}

// Once: a superseded boot is remembered in p.old, two deep, but
// its sessions live on. An on-path attacker keeps one datagram of node
// 1's first process; node 1 restarts three times (a crash loop) within
// RejectAfterTime; the kept datagram then makes node 2 take the dead
// boot for a new one: its stale heartbeat is delivered under a new
// incarnation, and the live process's next heartbeat is refused as
// superseded (and both sides logged a duplicate identity). Now every
// session of a superseded boot is stale, and never confirmed again.
func TestHeldDatagramOfADeadBootStaysDead(t *testing.T) {
	w := attackNet(t, 2)
	w.tickAll()
	w.pump(nil)
	w.send(t, "1", 2, 7, replica.Entry{Channel: "orders", Role: rolefsm.Leader, Tail: 99})
	kept := w.flight
	w.flight = nil // taken off the wire by the attacker
	for r := 0; r < 3; r++ {
		w.now = w.now.Add(20 * time.Second)
		delete(w.procs, "1")
		w.start(t, "1", 1, addrOf(1), 1, 0, 0, false)
		w.send(t, "1", 2, 1, replica.Entry{Channel: "orders", Role: rolefsm.Replica, Tail: 0})
		t.Log(w.pump(nil))
	}
	w.now = w.now.Add(time.Second)
	w.flight = kept
	lines := w.pump(nil)
	t.Log(lines)
	if heard(lines) {
		t.Errorf("a datagram of node 1's first, dead process, kept 61 s, was delivered: %s", lines[0])
	}
	w.now = w.now.Add(time.Second)
	w.send(t, "1", 2, 2, replica.Entry{Channel: "orders", Role: rolefsm.Replica, Tail: 0})
	lines = w.pump(nil)
	t.Log(lines, w.log.String())
	if strings.Contains(lines[0], "superseded") {
		t.Errorf("the live process's heartbeat was refused: %s", lines[0])
	}
}

// Once: a response whose ephemeral key is of low order (all
// zeros) makes flynn/noise's ReadMessage fail at the ee
// Diffie-Hellman without rolling back the hash it already mixed the
// key into; the pending handshake is then broken, and the genuine
// response, arriving after, fails too. One forged 84-byte datagram,
// from anyone who sees the initiation go by (its index is in the
// clear; mac1 needs only public keys), killed the handshake. Now a
// low-order ephemeral key is refused before flynn/noise sees it.
func TestLowOrderResponseCannotSpoilAHandshake(t *testing.T) {
	for _, eph := range []string{"random", "zero"} {
		t.Run(eph, func(t *testing.T) {
			w := attackNet(t, 2)
			w.send(t, "1", 2, 1, replica.Entry{Channel: "orders", Role: rolefsm.Leader, Tail: 1})
			init := w.flight[0]
			forged := appendPrefix(nil, typeResponse)
			forged = binary.BigEndian.AppendUint32(forged, 12345)
			forged = append(forged, init.d[4:8]...) // the initiator's index, from the initiation
			e := make([]byte, 32)
			if eph == "random" {
				_, _ = rand.Read(e)
			}
			forged = append(forged, e...)
			forged = append(forged, make([]byte, 24)...)
			key := macKey(w.procs["1"].t.PublicKey())
			m := mac1(&key, forged)
			forged = append(forged, m[:]...)
			// The man on the side's forgery reaches node 1 first.
			t.Log(w.deliverOne(dgram{from: netip.MustParseAddrPort("192.0.2.1:9"), to: addrOf(1), d: forged}))
			lines := w.pump(nil)
			t.Log(lines)
			if !heard(lines) {
				t.Errorf("with a forged response (%s ephemeral) first, the handshake failed: %v", eph, lines)
			}
		})
	}
}

// Once: an initiation's ephemeral key is remembered before the
// initiation is authenticated: a copy with one byte of the encrypted
// static key flipped (mac1 recomputed from the public key) that
// arrives first made the genuine one a "replay". Now it is remembered
// once the initiation has been read.
func TestCorruptCopyCannotPoisonTheReplayCache(t *testing.T) {
	w := attackNet(t, 2)
	w.send(t, "1", 2, 1, replica.Entry{Channel: "orders", Role: rolefsm.Leader, Tail: 1})
	bad := append([]byte(nil), w.flight[0].d[:InitiationSize-16]...)
	bad[50] ^= 1
	key := macKey(w.procs["2"].t.PublicKey())
	m := mac1(&key, bad)
	bad = append(bad, m[:]...)
	t.Log(w.deliverOne(dgram{from: addrOf(1), to: addrOf(2), d: bad}))
	lines := w.pump(nil)
	t.Log(lines)
	if !heard(lines) {
		t.Errorf("a corrupted copy raced ahead, and the genuine initiation was refused: %v", lines)
	}
}
