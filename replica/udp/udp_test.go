package udp

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func keyring(t testing.TB, fill ...byte) *Keyring {
	t.Helper()
	var keys [][]byte
	for _, f := range fill {
		keys = append(keys, bytes.Repeat([]byte{f}, 32))
	}
	k, err := NewKeyring(keys...)
	require.NoError(t, err)
	return k
}

func entries(n, nameLen int) []replica.Entry {
	es := make([]replica.Entry, n)
	for i := range es {
		name := strings.Repeat("c", nameLen-4) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26)) + "x"
		es[i] = replica.Entry{Channel: name, Role: rolefsm.Replica, Tail: uint64(i) * 1000003}
	}
	return es
}

func datagram(t testing.TB, h Header, es []replica.Entry, keys *Keyring) []byte {
	t.Helper()
	var p []byte
	p = appendUvarintCount(p, len(es))
	for _, e := range es {
		p = appendEntry(p, e)
	}
	d, err := seal(nil, h, p, keys)
	require.NoError(t, err)
	return d
}

func appendUvarintCount(p []byte, n int) []byte {
	return append(p, byte(n)) // tests use fewer than 128 entries
}

func TestRoundTrip(t *testing.T) {
	keys := keyring(t, 1)
	es := entries(5, 12)
	h := Header{Version: Version, Sealed: true, From: 3, To: 4, Incarnation: 77, Seq: 9, Beat: 4}
	d := datagram(t, h, es, keys)
	got, b, err := Decode(d, keys, DefaultMaxDatagram)
	require.NoError(t, err)
	assert.Equal(t, h, got)
	assert.Equal(t, replica.Batch{From: 3, Seq: 4, Incarnation: 77, Entries: es}, b)

	// Plain, for an insecure cluster; each side refuses the other kind.
	h.Sealed = false
	plain := datagram(t, h, es, nil)
	got, b, err = Decode(plain, nil, DefaultMaxDatagram)
	require.NoError(t, err)
	assert.Equal(t, h, got)
	assert.Equal(t, es, b.Entries)
	_, _, err = Decode(plain, keys, DefaultMaxDatagram)
	require.ErrorIs(t, err, ErrBadTag)
	_, _, err = Decode(d, nil, DefaultMaxDatagram)
	require.ErrorIs(t, err, ErrBadTag)
}

func TestDecodeRefuses(t *testing.T) {
	keys := keyring(t, 1)
	good := datagram(t, Header{From: 2, Incarnation: 1, Seq: 1, Beat: 1}, entries(3, 10), keys)
	flip := func(i int) []byte {
		d := bytes.Clone(good)
		d[i] ^= 0x10
		return d
	}
	for _, tc := range []struct {
		name string
		d    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"header cut", good[:HeaderSize-1], ErrTruncated},
		{"bad magic", flip(0), ErrTruncated},
		{"version 2", func() []byte { d := bytes.Clone(good); d[2] = 2; return d }(), ErrVersion},
		{"unknown flag", flip(3), ErrTruncated},
		{"sender flipped (header is authenticated)", flip(11), ErrBadTag},
		{"sequence flipped", flip(27), ErrBadTag},
		{"payload flipped", flip(HeaderSize + 2), ErrBadTag},
		{"tag flipped", flip(len(good) - 1), ErrBadTag},
		{"payload cut", good[:len(good)-3], ErrBadTag},
		{"oversize", make([]byte, DefaultMaxDatagram+1), ErrOversize},
		{"another cluster's key", datagram(t, Header{From: 2, Incarnation: 1, Seq: 1}, entries(1, 5), keyring(t, 9)), ErrBadTag},
	} {
		_, _, err := Decode(tc.d, keys, DefaultMaxDatagram)
		assert.ErrorIs(t, err, tc.want, tc.name)
	}
	// Authentic, but the payload does not parse: only a key holder can
	// send that.
	for _, p := range [][]byte{{}, {2, 1, 'a', 1}, {1, 200, 'a'}, {1, 1, 'a', 1, 0x80}, {0, 0}, {1, 1, 'a', 1, 0x81, 0x00}, {0x80, 0x00},
		{1, 3, 'a', 'b', 'c'}, {1, 3, 'a', 'b', 'c', 1}, {1, 0}} {
		d, err := seal(nil, Header{From: 2, Incarnation: 1, Seq: 1}, p, keys)
		require.NoError(t, err)
		_, _, err = Decode(d, keys, DefaultMaxDatagram)
		assert.ErrorIs(t, err, ErrTruncated, "payload %v", p)
	}
}

func TestKeyring(t *testing.T) {
	old, both, next := keyring(t, 1), keyring(t, 2, 1), keyring(t, 2)
	d := datagram(t, Header{From: 2, Seq: 1}, nil, old)
	_, _, err := Decode(d, both, DefaultMaxDatagram)
	require.NoError(t, err, "a node that sends with the new key still accepts the old one")
	_, _, err = Decode(datagram(t, Header{From: 2, Seq: 1}, nil, both), old, DefaultMaxDatagram)
	require.ErrorIs(t, err, ErrBadTag, "a node without the new key refuses it")
	_, _, err = Decode(d, next, DefaultMaxDatagram)
	require.ErrorIs(t, err, ErrBadTag, "the old key, once dropped, is refused")

	_, err = NewKeyring()
	require.Error(t, err)
	_, err = NewKeyring([]byte("short"))
	assert.EqualError(t, err, "udp: key 1: 5 bytes, want 16, 24 or 32")

	line, err := GenerateKey()
	require.NoError(t, err)
	k, err := ParseKeys([]byte("# cluster keys\n\n" + line + "\n  " + line + "  \n"))
	require.NoError(t, err)
	assert.Len(t, k.aeads, 2)
	for _, tc := range []struct{ file, msg string }{
		{"", "udp: key file holds no key"},
		{"# only a comment\n", "udp: key file holds no key"},
		{line + "\nnot base64!\n", "udp: key file line 2: not base64"},
		{"c2hvcnQ=\n", "udp: key file line 1: 5 bytes, want 16, 24 or 32"},
	} {
		_, err := ParseKeys([]byte(tc.file))
		assert.EqualError(t, err, tc.msg)
	}
}

func TestWindow(t *testing.T) {
	var w window
	steps := []struct {
		inc, seq uint64
		ok       bool
	}{
		{1, 0, false}, // sequence numbers start at 1
		{1, 5, true},
		{1, 5, false}, // replayed
		{1, 3, true},  // reordered, within the window
		{1, 3, false},
		{1, 70, true},
		{1, 6, false}, // 64 behind: too old
		{1, 7, true},  // 63 behind
		{1, 7, false},
		{1, 200, true}, // a jump past the window forgets it
		{1, 199, true},
		{0, 500, false}, // an older incarnation
		{2, 1, true},    // a reboot
		{1, 201, false}, // the dead process, replayed
		{2, 1, false},
		{2, 2, true},
		{2, 1, false}, // one behind: remembered
		{2, 66, true},
		{2, 2, false}, // 64 behind: too old
		{2, 3, true},  // 63 behind, never seen
	}
	for i, s := range steps {
		assert.Equal(t, s.ok, w.accept(s.inc, s.seq), "step %d: (%d, %d)", i, s.inc, s.seq)
	}
}

// pair is two transports on loopback sockets that know each other.
func pair(t *testing.T, keysA, keysB *Keyring) (a, b *Transport) {
	t.Helper()
	ca, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	cb, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	a, err = New(Config{ID: 1, Conn: ca, Keys: keysA, Insecure: keysA == nil, Peers: map[replica.NodeID]string{2: cb.LocalAddr().String()}})
	require.NoError(t, err)
	b, err = New(Config{ID: 2, Conn: cb, Keys: keysB, Insecure: keysB == nil, Peers: map[replica.NodeID]string{1: ca.LocalAddr().String()}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

func receive(t *testing.T, tr *Transport) replica.Batch {
	t.Helper()
	select {
	case in := <-tr.Inbox():
		return in.Batch
	case <-time.After(10 * time.Second): // a bound, not a timing claim
		t.Fatal("nothing received")
	}
	return replica.Batch{}
}

func TestSendSplitsLargeBatches(t *testing.T) {
	a, b := pair(t, keyring(t, 1), keyring(t, 1))
	es := entries(100, 32)
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 1, Seq: 7, Entries: es}))
	var got []replica.Entry
	parts := 0
	for len(got) < len(es) {
		part := receive(t, b)
		assert.Equal(t, replica.NodeID(1), part.From)
		assert.Equal(t, uint64(7), part.Seq, "every part carries the heartbeat's number")
		assert.GreaterOrEqual(t, len(part.Entries), 30, "a datagram carries at least 30 channels of 32-byte names")
		got = append(got, part.Entries...)
		parts++
	}
	assert.Equal(t, es, got)
	st := a.Stats()
	assert.Equal(t, uint64(parts), st.DatagramsSent)
	assert.LessOrEqual(t, st.BytesSent, uint64(parts*DefaultMaxDatagram))
	assert.Equal(t, uint64(3), st.DatagramsSent, "100 entries of 37–38 bytes: 3 datagrams of at most 1,400")

	// An empty batch still goes out, as one datagram.
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 1, Seq: 8}))
	assert.Empty(t, receive(t, b).Entries)

	err := a.Send(context.Background(), 9, replica.Batch{})
	require.ErrorIs(t, err, ErrUnknownPeer)
	err = a.Send(context.Background(), 2, replica.Batch{Entries: []replica.Entry{{Channel: strings.Repeat("x", 256)}}})
	require.Error(t, err)
}

// TestBadDatagramsAreCounted aims every kind of bad datagram at a
// running transport: none is delivered, each is counted under its
// reason, and a good one that follows gets through.
func TestBadDatagramsAreCounted(t *testing.T) {
	keys := keyring(t, 1)
	_, b := pair(t, keys, keys)
	attacker, err := net.DialUDP("udp", nil, b.Addr().(*net.UDPAddr))
	require.NoError(t, err)
	defer attacker.Close()

	good := datagram(t, Header{From: 1, To: 2, Incarnation: 10, Seq: 1, Beat: 1}, entries(2, 8), keys)
	flipped := bytes.Clone(good)
	flipped[HeaderSize+1] ^= 1
	version := bytes.Clone(good)
	version[2] = 9
	sends := []struct {
		d    []byte
		why  Reason
		name string
	}{
		{datagram(t, Header{From: 1, To: 2, Incarnation: 10, Seq: 1}, entries(1, 8), keyring(t, 7)), BadTag, "forged with another key"},
		{flipped, BadTag, "bit-flipped"},
		{good[:20], Garbage, "truncated"},
		{make([]byte, DefaultMaxDatagram+100), Oversize, "oversized"},
		{[]byte("GET / HTTP/1.1\r\n\r\n"), Garbage, "garbage"},
		{version, BadVersion, "unknown version"},
		{datagram(t, Header{From: 9, To: 2, Incarnation: 10, Seq: 1}, entries(1, 8), keys), UnknownSender, "unknown sender"},
		{datagram(t, Header{From: 1, To: 3, Incarnation: 10, Seq: 5}, entries(1, 8), keys), Misdirected, "sealed for another node"},
		{good, 0, "good"},
		{good, Replayed, "replayed"},
		{datagram(t, Header{From: 1, To: 2, Incarnation: 9, Seq: 50}, entries(1, 8), keys), Replayed, "older incarnation"},
	}
	var want [numReasons]uint64
	for _, s := range sends {
		_, err := attacker.Write(s.d)
		require.NoError(t, err, s.name)
		if s.name != "good" {
			want[s.why]++
		}
	}
	sentinel := datagram(t, Header{From: 1, To: 2, Incarnation: 10, Seq: 2, Beat: 2}, nil, keys)
	_, err = attacker.Write(sentinel)
	require.NoError(t, err)

	first := receive(t, b)
	assert.Equal(t, uint64(1), first.Seq, "the good datagram")
	assert.Equal(t, uint64(2), receive(t, b).Seq, "then the sentinel: everything before it was read")
	assert.Empty(t, b.Inbox(), "nothing else was delivered")
	st := b.Stats()
	assert.Equal(t, want, st.Dropped)
	assert.Equal(t, uint64(len(sends)+1), st.DatagramsReceived)
}

func TestConfigErrors(t *testing.T) {
	keys := keyring(t, 1)
	for _, tc := range []struct {
		cfg Config
		msg string
	}{
		{Config{Keys: keys}, "node id 0 (ids are 1-based)"},
		{Config{ID: 1}, "no key: give a keyring, or run insecure on purpose"},
		{Config{ID: 1, Keys: keys, Insecure: true}, "both a keyring and insecure"},
		{Config{ID: 1, Keys: keys, MaxDatagram: 100}, "max datagram 100, want at least 128"},
		{Config{ID: 1, Keys: keys, Peers: map[replica.NodeID]string{1: "127.0.0.1:1"}}, "peer id 1"},
		{Config{ID: 1, Keys: keys, Peers: map[replica.NodeID]string{2: "nowhere:x"}}, "peer 2:"},
		{Config{ID: 1, Keys: keys, Listen: "127.0.0.1:x"}, "listen address:"},
	} {
		_, err := New(tc.cfg)
		require.ErrorIs(t, err, ErrConfig, tc.msg)
		assert.Contains(t, err.Error(), "udp: bad configuration: "+tc.msg)
	}
}

func TestInsecureClusterAndClose(t *testing.T) {
	a, b := pair(t, nil, nil)
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 9, Seq: 1, Entries: entries(1, 5)}))
	assert.Equal(t, replica.NodeID(1), receive(t, b).From, "the header names the sender, whatever the batch says")

	// A sealed datagram is refused by an insecure node.
	sealed := datagram(t, Header{From: 1, To: 2, Incarnation: 1, Seq: 1}, nil, keyring(t, 1))
	c, err := net.DialUDP("udp", nil, b.Addr().(*net.UDPAddr))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(sealed)
	require.NoError(t, err)
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 2}))
	assert.Equal(t, uint64(2), receive(t, b).Seq)
	assert.Equal(t, uint64(1), b.Stats().Dropped[BadTag])

	require.NoError(t, a.Close())
	assert.ErrorIs(t, a.Close(), replica.ErrTransportClosed)
	assert.ErrorIs(t, a.Send(context.Background(), 2, replica.Batch{}), replica.ErrTransportClosed)
	_, ok := <-a.Inbox()
	assert.False(t, ok, "the inbox is closed")
}

// TestRTTIsMeasured: a batch answering one from the receiver carries
// the receiver's own send time back, and the receiver measures the
// round trip on its own clock.
func TestRTTIsMeasured(t *testing.T) {
	a, b := pair(t, keyring(t, 1), keyring(t, 1))
	ctx := context.Background()
	require.NoError(t, a.Send(ctx, 2, replica.Batch{Seq: 1}))
	in := <-b.Inbox()
	assert.False(t, in.HasRTT, "b has sent nothing to echo yet")
	require.NoError(t, b.Send(ctx, 1, replica.Batch{Seq: 1}))
	select {
	case in = <-a.Inbox():
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}
	require.True(t, in.HasRTT)
	assert.Positive(t, in.RTT)
	assert.Less(t, in.RTT, 10*time.Second, "a round trip on loopback, whatever the machine's load")

	// An echo from the future (or forged by a key holder) gives no RTT.
	keys := keyring(t, 1)
	c, err := net.DialUDP("udp", nil, a.Addr().(*net.UDPAddr))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(datagram(t, Header{From: 2, To: 1, Incarnation: 1 << 62, Seq: 1, Beat: 2, Echo: 1 << 62}, nil, keys))
	require.NoError(t, err)
	select {
	case in = <-a.Inbox():
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}
	assert.Equal(t, uint64(2), in.Batch.Seq)
	assert.False(t, in.HasRTT)
}

func TestRoundTripArithmetic(t *testing.T) {
	for _, tc := range []struct {
		echo, held, now uint64
		rtt             time.Duration
		ok              bool
	}{
		{0, 0, 100, 0, false},   // no echo
		{40, 10, 100, 50, true}, // sent at 40, held 10, back at 100
		{40, 60, 100, 0, true},  // all of it held
		{40, 61, 100, 0, false}, // held longer than the round trip
		{100, 0, 100, 0, true},  // the same instant
		{101, 0, 100, 0, false}, // from the future
		{1, 0, 1 << 62, 1<<62 - 1, true},
	} {
		rtt, ok := roundTrip(Header{Echo: tc.echo, Held: tc.held}, tc.now)
		assert.Equal(t, tc.ok, ok, "%+v", tc)
		assert.Equal(t, tc.rtt, rtt, "%+v", tc)
	}
	var e echo
	e.observe(Header{Incarnation: 1, Sent: 50}, 1000)
	e.observe(Header{Incarnation: 1, Sent: 40}, 1010) // reordered: older
	assert.Equal(t, echo{incarnation: 1, sent: 50, at: 1000}, e)
	e.observe(Header{Incarnation: 1, Sent: 50}, 1020) // a duplicate
	assert.Equal(t, echo{incarnation: 1, sent: 50, at: 1000}, e)
	e.observe(Header{Incarnation: 1, Sent: 60}, 1030)
	assert.Equal(t, echo{incarnation: 1, sent: 60, at: 1030}, e)
	e.observe(Header{Incarnation: 2, Sent: 5}, 1040) // a reboot starts over
	assert.Equal(t, echo{incarnation: 2, sent: 5, at: 1040}, e)
}

// TestWireBoundaries pins the limits exactly: the largest datagram and
// channel name accepted, an entry that fills a datagram to the byte, a
// tail at a uvarint's width boundary, and many datagrams in a row
// through the replay window.
func TestWireBoundaries(t *testing.T) {
	keys := keyring(t, 1)
	// A datagram of exactly MaxDatagram bytes is accepted; one more is not.
	room := 200 - HeaderSize - TagSize - 1 // one byte of count
	name := strings.Repeat("n", room-3)    // length byte, role byte, one byte of tail
	d := datagram(t, Header{From: 2, Seq: 1}, []replica.Entry{{Channel: name, Role: rolefsm.Replica, Tail: 127}}, keys)
	require.Len(t, d, 200)
	_, b, err := Decode(d, keys, 200)
	require.NoError(t, err)
	assert.Equal(t, uint64(127), b.Entries[0].Tail)
	_, _, err = Decode(d, keys, 199)
	require.ErrorIs(t, err, ErrOversize)

	// The longest name decodes; a longer one is refused.
	for _, n := range []int{MaxChannelName, MaxChannelName + 1} {
		e := replica.Entry{Channel: strings.Repeat("x", n), Role: rolefsm.Leader}
		_, b, err := Decode(datagram(t, Header{From: 2, Seq: 1}, []replica.Entry{e}, keys), keys, DefaultMaxDatagram)
		if n == MaxChannelName {
			require.NoError(t, err)
			assert.Equal(t, e, b.Entries[0])
		} else {
			require.ErrorIs(t, err, ErrTruncated)
		}
	}

	// Uvarint widths: 127 takes one byte, 128 two.
	for _, tail := range []uint64{127, 128, 1<<14 - 1, 1 << 14, 1<<64 - 1} {
		e := replica.Entry{Channel: "c", Role: rolefsm.Leader, Tail: tail}
		_, b, err := Decode(datagram(t, Header{From: 2, Seq: 1}, []replica.Entry{e}, keys), keys, DefaultMaxDatagram)
		require.NoError(t, err, "tail %d", tail)
		assert.Equal(t, e, b.Entries[0])
		assert.Equal(t, len(appendEntry(nil, e)), entrySize(e), "tail %d", tail)
	}

	// Send packs an entry that fills the datagram to the byte.
	ca, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	tr, err := New(Config{ID: 1, Conn: ca, Keys: keys, MaxDatagram: 200, Peers: map[replica.NodeID]string{2: peer.LocalAddr().String()}})
	require.NoError(t, err)
	defer tr.Close()
	ctx := context.Background()
	require.NoError(t, tr.Send(ctx, 2, replica.Batch{Seq: 1, Entries: []replica.Entry{{Channel: strings.Repeat("n", room-3), Role: rolefsm.Replica}}}))
	buf := make([]byte, 1<<16)
	n, _, err := peer.ReadFromUDP(buf)
	require.NoError(t, err)
	assert.Equal(t, 200, n)
	h, _, err := Decode(buf[:n], keys, 200)
	require.NoError(t, err)
	assert.NotZero(t, h.Incarnation, "an incarnation by default")
	assert.Equal(t, uint64(1), h.Seq)
	err = tr.Send(ctx, 2, replica.Batch{Entries: []replica.Entry{{Channel: strings.Repeat("n", room-2)}}})
	require.Error(t, err, "one byte too many for a datagram")

	// The longest channel name goes; the next does not.
	big, err := New(Config{ID: 1, Listen: "127.0.0.1:0", Keys: keys, Peers: map[replica.NodeID]string{2: peer.LocalAddr().String()}})
	require.NoError(t, err)
	defer big.Close()
	require.NoError(t, big.Send(ctx, 2, replica.Batch{Entries: []replica.Entry{{Channel: strings.Repeat("x", MaxChannelName)}}}))
	require.Error(t, big.Send(ctx, 2, replica.Batch{Entries: []replica.Entry{{Channel: strings.Repeat("x", MaxChannelName+1)}}}))
}

// TestManyDatagramsInARow: sequence numbers grow, so a long run of
// datagrams all pass the receiver's replay window.
func TestManyDatagramsInARow(t *testing.T) {
	a, b := pair(t, keyring(t, 1), keyring(t, 1))
	for i := 1; i <= 100; i++ {
		require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: uint64(i)}))
		assert.Equal(t, uint64(i), receive(t, b).Seq)
	}
	assert.Zero(t, b.Stats().Dropped)
}

// TestEachReceiverHasItsOwnSequence pins what the receiver id buys: a
// sender numbers its datagrams per receiver, names the receiver in the
// authenticated header, and a datagram captured on its way to one node
// is refused by another, even within that node's replay window.
func TestEachReceiverHasItsOwnSequence(t *testing.T) {
	keys := keyring(t, 1)
	tap := func() *net.UDPConn { // a peer's socket that only listens
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	two := tap()
	cb, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	a, err := New(Config{ID: 1, Listen: "127.0.0.1:0", Keys: keys, Incarnation: 5,
		Peers: map[replica.NodeID]string{2: two.LocalAddr().String(), 3: cb.LocalAddr().String()}})
	require.NoError(t, err)
	three, err := New(Config{ID: 3, Conn: cb, Keys: keys, Peers: map[replica.NodeID]string{1: a.Addr().String()}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(); _ = three.Close() })

	ctx := context.Background()
	for beat := uint64(1); beat <= 3; beat++ {
		require.NoError(t, a.Send(ctx, 2, replica.Batch{Seq: beat}))
		require.NoError(t, a.Send(ctx, 3, replica.Batch{Seq: beat}))
	}
	buf := make([]byte, 2048)
	var captured [][]byte
	for want := uint64(1); want <= 3; want++ {
		require.NoError(t, two.SetReadDeadline(time.Now().Add(10*time.Second))) // a bound, not a timing claim
		n, _, err := two.ReadFromUDP(buf)
		require.NoError(t, err)
		h, _, err := Decode(buf[:n], keys, DefaultMaxDatagram)
		require.NoError(t, err)
		assert.Equal(t, Header{Version: Version, Sealed: true, From: 1, To: 2, Incarnation: 5, Seq: want, Beat: want},
			Header{Version: h.Version, Sealed: h.Sealed, From: h.From, To: h.To, Incarnation: h.Incarnation, Seq: h.Seq, Beat: h.Beat},
			"node 2 sees sequence numbers 1, 2, 3, with no gaps for what went to node 3")
		captured = append(captured, bytes.Clone(buf[:n]))
		assert.Equal(t, want, receive(t, three).Seq)
	}

	// Node 3's window has seen sequences 1 to 3 from node 1; the capture
	// of node 2's fourth would be new to it, but it was sealed for node 2.
	require.NoError(t, a.Send(ctx, 2, replica.Batch{Seq: 4}))
	n, _, err := two.ReadFromUDP(buf)
	require.NoError(t, err)
	attacker, err := net.DialUDP("udp", nil, cb.LocalAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer attacker.Close()
	for _, d := range append(captured, buf[:n]) {
		_, err = attacker.Write(d)
		require.NoError(t, err)
	}
	require.NoError(t, a.Send(ctx, 3, replica.Batch{Seq: 9}))
	assert.Equal(t, uint64(9), receive(t, three).Seq, "the captures were not delivered")
	assert.Equal(t, uint64(4), three.Stats().Dropped[Misdirected])
}
