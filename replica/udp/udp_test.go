package udp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is a logger for tests that check no log line.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func nodeKeys(t testing.TB, ids ...replica.NodeID) map[replica.NodeID]PrivateKey {
	t.Helper()
	keys := map[replica.NodeID]PrivateKey{}
	for _, id := range ids {
		k, err := GenerateKey()
		require.NoError(t, err)
		keys[id] = k
	}
	return keys
}

func entries(n, nameLen int) []replica.Entry {
	es := make([]replica.Entry, n)
	for i := range es {
		name := fmt.Sprintf("%0*d", nameLen, i)
		es[i] = replica.Entry{Channel: name, Role: rolefsm.Replica, Tail: uint64(i)}
	}
	return es
}

func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	return c
}

// mesh starts a transport per id on loopback, each knowing the others
// and their keys (none if insecure); cfg adjusts each one's Config.
func mesh(t *testing.T, insecure bool, cfg func(*Config), ids ...replica.NodeID) map[replica.NodeID]*Transport {
	t.Helper()
	keys := nodeKeys(t, ids...)
	conns := map[replica.NodeID]*net.UDPConn{}
	for _, id := range ids {
		conns[id] = listen(t)
	}
	trs := map[replica.NodeID]*Transport{}
	for _, id := range ids {
		c := Config{ID: id, Conn: conns[id], Peers: map[replica.NodeID]Peer{}, Logger: quiet}
		if insecure {
			c.Insecure = true
		} else {
			c.Key = keys[id]
		}
		for _, p := range ids {
			if p != id {
				c.Peers[p] = Peer{Addr: conns[p].LocalAddr().String(), Keys: []PublicKey{keys[p].Public()}}
			}
		}
		if cfg != nil {
			cfg(&c)
		}
		tr, err := New(c)
		require.NoError(t, err)
		trs[id] = tr
		t.Cleanup(func() { _ = tr.Close() })
	}
	return trs
}

func pair(t *testing.T, insecure bool) (a, b *Transport) {
	trs := mesh(t, insecure, nil, 1, 2)
	return trs[1], trs[2]
}

// receive returns the next batch, its entries copied (the transport
// reuses them once the next is taken).
func receive(t *testing.T, tr *Transport) replica.Inbound {
	t.Helper()
	select {
	case in := <-tr.Inbox():
		in.Batch.Entries = append([]replica.Entry(nil), in.Batch.Entries...)
		return in
	case <-time.After(10 * time.Second): // a bound, not a timing claim
		t.Fatal("nothing received")
	}
	return replica.Inbound{}
}

// settle waits until a's and b's handshakes are done, so that what
// follows is not queued behind them.
func settle(t *testing.T, trs ...*Transport) {
	t.Helper()
	for range 1000 { // a bound: 10 s
		done := true
		for _, tr := range trs {
			tr.mu.Lock()
			for _, p := range tr.peers {
				done = done && p.current != nil && p.hs == nil
			}
			tr.mu.Unlock()
		}
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("handshakes did not complete")
}

func TestKeys(t *testing.T) {
	k, err := GenerateKey()
	require.NoError(t, err)
	pub := k.Public()
	back, err := ParsePublicKey(pub.String())
	require.NoError(t, err)
	assert.Equal(t, pub, back)
	priv, err := ParsePrivateKey([]byte("# comment\n\n" + k.String() + "\n"))
	require.NoError(t, err)
	assert.Equal(t, k, priv)

	for _, tc := range []struct{ in, msg string }{
		{"not base64!", "is not base64"},
		{"AAAA", "public key of 3 bytes, want 32"},
		{PublicKey{}.String(), "public key of low order"},
	} {
		_, err := ParsePublicKey(tc.in)
		require.ErrorIs(t, err, ErrBadKey, tc.in)
		assert.Contains(t, err.Error(), tc.msg)
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "the key file holds no key"},
		{"# only a comment\n", "the key file holds no key"},
		{"!!!\n", "line 1: not base64"},
		{"\nAAAA\n", "line 2: 3 bytes, want 32"},
		{k.String() + "\n" + k.String() + "\n", "line 2: a key file holds one key"},
	} {
		_, err := ParsePrivateKey([]byte(tc.in))
		require.ErrorIs(t, err, ErrBadKey, tc.in)
		assert.Contains(t, err.Error(), tc.msg)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	require.NoError(t, WritePrivateKey(path, k))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	loaded, err := LoadPrivateKey(path)
	require.NoError(t, err)
	assert.Equal(t, k, loaded)
	require.ErrorIs(t, WritePrivateKey(path, k), os.ErrExist, "never overwritten")

	for _, mode := range []os.FileMode{0o640, 0o604, 0o666, 0o620} {
		require.NoError(t, os.Chmod(path, mode))
		_, err := LoadPrivateKey(path)
		require.ErrorIs(t, err, ErrKeyFileMode, "mode %04o", mode)
		assert.Contains(t, err.Error(), fmt.Sprintf("has mode %04o: chmod 600 %s", mode, path))
	}
	require.NoError(t, os.Chmod(path, 0o400))
	_, err = LoadPrivateKey(path)
	require.NoError(t, err, "read-only to its owner is fine")
}

func TestWindow(t *testing.T) {
	var w window
	steps := []struct {
		n  uint64
		ok bool
	}{
		{0, true}, {0, false}, {2, true}, {1, true}, {1, false}, {2, false},
		{windowSize + 1, true}, // 0 and 1 are now windowSize and more behind
		{1, false}, {2, false}, {3, true}, {3, false},
		{100_000, true}, {100_000 - windowSize + 1, true}, {100_000 - windowSize, false},
		{99_999, true}, {100_001, true},
		{RejectAfterMessages - 1, true}, {RejectAfterMessages, false}, {1<<64 - 1, false},
		{RejectAfterMessages - 2, true},
	}
	for i, s := range steps {
		assert.Equal(t, s.ok, w.accept(s.n), "step %d: counter %d", i, s.n)
	}
	// A jump past the whole ring forgets everything below it.
	var j window
	for n := uint64(0); n < 64*windowBlocks; n++ {
		require.True(t, j.accept(n))
	}
	const far = uint64(10 * 64 * windowBlocks)
	require.True(t, j.accept(far))
	for n := far - windowSize + 1; n < far; n++ {
		require.True(t, j.accept(n), "counter %d is new", n)
	}
}

func TestConfigErrors(t *testing.T) {
	k := nodeKeys(t, 1, 2)
	pub2 := k[2].Public()
	for _, tc := range []struct {
		cfg Config
		msg string
	}{
		{Config{Key: k[1]}, "node id 0 (ids are 1-based)"},
		{Config{ID: 1}, "no key: give this node's private key, or run insecure on purpose"},
		{Config{ID: 1, Key: k[1], Insecure: true}, "both a key and insecure"},
		{Config{ID: 1, Key: k[1], MaxDatagram: 100}, "max datagram 100, want at least 128"},
		{Config{ID: 1, Key: k[1], Peers: map[replica.NodeID]Peer{1: {Addr: "127.0.0.1:1", Keys: []PublicKey{pub2}}}}, "peer id 1"},
		{Config{ID: 1, Key: k[1], Peers: map[replica.NodeID]Peer{2: {Addr: "nowhere:x", Keys: []PublicKey{pub2}}}}, "peer 2:"},
		{Config{ID: 1, Key: k[1], Peers: map[replica.NodeID]Peer{2: {Addr: "127.0.0.1:1"}}}, "peer 2: no public key"},
		{Config{ID: 1, Key: k[1], Peers: map[replica.NodeID]Peer{2: {Addr: "127.0.0.1:1", Keys: []PublicKey{{}}}}}, "peer 2: the zero public key"},
		{Config{ID: 1, Key: k[1], Peers: map[replica.NodeID]Peer{2: {Addr: "127.0.0.1:1", Keys: []PublicKey{k[1].Public()}}}}, "peer 2 has this node's own public key"},
		{Config{ID: 1, Key: k[1], Peers: map[replica.NodeID]Peer{
			2: {Addr: "127.0.0.1:1", Keys: []PublicKey{pub2}}, 3: {Addr: "127.0.0.1:2", Keys: []PublicKey{pub2}}}}, "peers 2 and 3 have the same public key"},
		{Config{ID: 1, Key: k[1], Listen: "127.0.0.1:x"}, "listen address:"},
	} {
		_, err := New(tc.cfg)
		require.ErrorIs(t, err, ErrBadConfig, tc.msg)
		assert.Contains(t, err.Error(), "udp: bad configuration: "+tc.msg)
	}
}

func TestSendSplitsLargeBatches(t *testing.T) {
	a, b := pair(t, false)
	settle(t, a, b)
	before := a.Stats().DatagramsSent
	es := entries(100, 32)
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 1, Seq: 7, Entries: es}))
	var got []replica.Entry
	parts := 0
	for len(got) < len(es) {
		part := receive(t, b).Batch
		assert.Equal(t, replica.NodeID(1), part.From)
		assert.Equal(t, uint64(7), part.Seq, "every part carries the heartbeat's number")
		if parts < 2 {
			assert.Len(t, part.Entries, 38, "a full datagram carries 38 channels of 32-byte names")
		}
		got = append(got, part.Entries...)
		parts++
	}
	assert.Equal(t, es, got)
	st := a.Stats()
	assert.Equal(t, uint64(parts), st.DatagramsSent-before)
	assert.Equal(t, 3, parts, "100 entries of 35 bytes: 3 datagrams of at most 1,400")

	// An empty batch still goes out, as one datagram.
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 1, Seq: 8}))
	assert.Empty(t, receive(t, b).Batch.Entries)

	err := a.Send(context.Background(), 9, replica.Batch{})
	require.ErrorIs(t, err, ErrUnknownPeer)
	// A name the wire cannot carry leaves its entry out, and only it.
	long := strings.Repeat("x", MaxChannelName+1)
	err = a.Send(context.Background(), 2, replica.Batch{Seq: 9, Entries: []replica.Entry{{Channel: long}, {Channel: "ok", Role: rolefsm.Leader}, {Channel: ""}}})
	var se *SendError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, ErrChannelName)
	assert.Equal(t, replica.NodeID(2), se.To)
	require.Len(t, se.Left, 2)
	assert.Equal(t, long, se.Left[0].Channel)
	assert.Equal(t, "", se.Left[1].Channel)
	assert.Contains(t, err.Error(), "udp: 2 entries to node 2 left out: channel \"xxx")
	in := receive(t, b)
	assert.Equal(t, []replica.Entry{{Channel: "ok", Role: rolefsm.Leader}}, in.Batch.Entries, "the other entry went")
	assert.Equal(t, MaxChannelName, a.Limits().MaxChannelName, "the transport says what it carries")
}

// TestOverheadAndMaxDatagram pins the wire's size: a sealed heartbeat
// is its entries plus Overhead bytes (65, against 96 for version 1's
// header and tag), and an entry that fills MaxDatagram to the byte goes
// out in one datagram.
func TestOverheadAndMaxDatagram(t *testing.T) {
	assert.Equal(t, 65, Overhead)
	trs := mesh(t, false, func(c *Config) { c.MaxDatagram = 150 }, 1, 2)
	a, b := trs[1], trs[2]
	settle(t, a, b)
	room := 150 - Overhead - 1 // one byte of count
	name := strings.Repeat("n", room-3)
	before := a.Stats()
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 1, Entries: []replica.Entry{{Channel: name, Role: rolefsm.Replica, Tail: 127}}}))
	in := receive(t, b)
	assert.Equal(t, name, in.Batch.Entries[0].Channel)
	after := a.Stats()
	assert.Equal(t, uint64(1), after.DatagramsSent-before.DatagramsSent)
	assert.Equal(t, uint64(150), after.BytesSent-before.BytesSent)
	err := a.Send(context.Background(), 2, replica.Batch{Entries: []replica.Entry{{Channel: name + "n"}}})
	require.Error(t, err, "one byte too many for a datagram")
}

func TestInsecureClusterAndClose(t *testing.T) {
	a, b := pair(t, true)
	assert.True(t, a.Stats().Insecure)
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 9, Seq: 1, Entries: entries(1, 5)}))
	assert.Equal(t, replica.NodeID(1), receive(t, b).Batch.From, "the header names the sender, whatever the batch says")

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
	a, b := pair(t, false)
	settle(t, a, b)
	ctx := context.Background()
	// The keep-alives of the handshakes already carried send times:
	// each side has something to echo.
	require.NoError(t, a.Send(ctx, 2, replica.Batch{Seq: 1}))
	receive(t, b)
	require.NoError(t, b.Send(ctx, 1, replica.Batch{Seq: 1}))
	in := receive(t, a)
	require.True(t, in.HasRTT)
	assert.Positive(t, in.RTT)
	assert.Less(t, in.RTT, 10*time.Second, "a round trip on loopback, whatever the machine's load")
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
		rtt, ok := roundTrip(body{echo: tc.echo, held: tc.held}, tc.now)
		assert.Equal(t, tc.ok, ok, "%+v", tc)
		assert.Equal(t, tc.rtt, rtt, "%+v", tc)
	}
}

// TestBadDatagramsAreCounted aims every kind of bad datagram at a
// running transport: none is delivered, each is counted under its
// reason, and a good one that follows gets through.
func TestBadDatagramsAreCounted(t *testing.T) {
	a, b := pair(t, false)
	settle(t, a, b)
	attacker, err := net.DialUDP("udp", nil, b.Addr().(*net.UDPAddr))
	require.NoError(t, err)
	defer attacker.Close()

	b.mu.Lock()
	s := b.peers[1].current
	index := s.index
	b.mu.Unlock()
	data := func(counter uint64, n int) []byte {
		d := appendPrefix(nil, typeData)
		d = binary.BigEndian.AppendUint32(d, index)
		d = binary.BigEndian.AppendUint64(d, counter)
		return append(d, make([]byte, n)...)
	}
	withMac := func(d []byte) []byte { // a forged message with a valid mac1: b's public key is no secret
		key := macKey(b.PublicKey())
		m := mac1(&key, d[:len(d)-16])
		copy(d[len(d)-16:], m[:])
		return d
	}
	init := make([]byte, InitiationSize)
	copy(init, appendPrefix(nil, typeInitiation))
	_, _ = rand.Read(init[4 : InitiationSize-16])
	version := data(5, 80)
	version[2] = 1
	sends := []struct {
		d    []byte
		why  Reason
		name string
	}{
		{data(1<<40, 80), BadTag, "a sealed datagram forged under a live session's index, far ahead"},
		{data(1<<40, 80), BadTag, "again: the forgery moved no window"},
		{data(0, 10), Garbage, "too short to hold a body"},
		{[]byte("rf"), Garbage, "truncated"},
		{make([]byte, DefaultMaxDatagram+100), Oversize, "oversized"},
		{[]byte("GET / HTTP/1.1\r\n\r\n"), Garbage, "garbage"},
		{version, BadVersion, "version 1"},
		{append(appendPrefix(nil, 3), make([]byte, 80)...), Garbage, "an unknown type"},
		{append(appendPrefix(nil, typePlain), make([]byte, 80)...), BadTag, "in the clear, to a node with keys"},
		{func() []byte { d := data(1, 80); d[4] ^= 0xff; return d }(), UnknownSession, "an index nobody has"},
		{init, Misdirected, "an initiation not made for b's key"},
		{withMac(bytes.Clone(init)), BadTag, "an initiation with a valid mac1 and nothing else"},
		{withMac(append(appendPrefix(nil, typeResponse), make([]byte, ResponseSize-4)...)), UnknownSession, "a response to no handshake"},
		{make([]byte, InitiationSize+1), Garbage, "not ours"},
	}
	var want [NumReasons]uint64
	for _, s := range sends {
		_, err := attacker.Write(s.d)
		require.NoError(t, err, s.name)
		want[s.why]++
	}
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 1}))
	assert.Equal(t, uint64(1), receive(t, b).Batch.Seq, "a good one gets through: the window did not move")
	// The attacker's datagrams and a's come from two sockets: a's may
	// be read first. A bound while the reader catches up.
	for i := 0; i < 1000 && b.Stats().Dropped != want; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	assert.Equal(t, want, b.Stats().Dropped)
}

// TestManyDatagramsInARow: counters grow, so a long run of datagrams all
// pass the receiver's replay window.
func TestManyDatagramsInARow(t *testing.T) {
	a, b := pair(t, false)
	settle(t, a, b)
	for i := 1; i <= 100; i++ {
		require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: uint64(i)}))
		assert.Equal(t, uint64(i), receive(t, b).Batch.Seq)
	}
	assert.Zero(t, b.Stats().Dropped)
}

// TestHeartbeatWaitsForTheHandshake: a heartbeat sent before the first
// handshake completes goes out when it does, not a retry later.
func TestHeartbeatWaitsForTheHandshake(t *testing.T) {
	a, b := pair(t, false)
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 1, Entries: entries(3, 4)}))
	in := receive(t, b)
	assert.Equal(t, uint64(1), in.Batch.Seq)
	assert.Len(t, in.Batch.Entries, 3)
	assert.Equal(t, uint64(1), in.Batch.Incarnation)
}

// TestFloodCannotStarveAnotherPeer: one peer's datagrams fill its own
// queue only; another peer's heartbeat is served within a round.
func TestFloodCannotStarveAnotherPeer(t *testing.T) {
	trs := mesh(t, false, func(c *Config) { c.Inbox = 16 }, 1, 2, 3)
	settle(t, trs[1], trs[2], trs[3])
	ctx := context.Background()
	const flood = 100 // past the queue of 16, within the socket's buffer
	for i := range flood {
		require.NoError(t, trs[2].Send(ctx, 1, replica.Batch{Seq: uint64(i + 1), Entries: entries(20, 8)}))
	}
	require.NoError(t, trs[3].Send(ctx, 1, replica.Batch{Seq: 1}))
	queued := func() bool { // node 3's heartbeat has been read, behind the flood
		in := &trs[1].in
		in.mu.Lock()
		defer in.mu.Unlock()
		q := in.queues[3]
		return q != nil && q.size > 0
	}
	for i := 0; i < 1000 && !queued(); i++ {
		time.Sleep(10 * time.Millisecond) // a bound while the reader reads the flood
	}
	// Two peers' queues: node 3's heartbeat is among the first two out.
	var from []replica.NodeID
	for range 2 {
		from = append(from, receive(t, trs[1]).Batch.From)
	}
	assert.Contains(t, from, replica.NodeID(3), "the flood did not starve node 3")
	assert.Positive(t, trs[1].Stats().Dropped[InboxFull], "the flood overflowed its own queue")
}

// TestKernelDropsAreCounted: datagrams the kernel drops for a full
// socket buffer are read from SO_RXQ_OVFL (Linux).
func TestKernelDropsAreCounted(t *testing.T) {
	conn := listen(t)
	require.NoError(t, conn.SetReadBuffer(4096))
	if !enableDropCount(conn) {
		_ = conn.Close()
		t.Skip("this system does not report socket drops")
	}
	tr, err := New(Config{ID: 1, Conn: conn, Insecure: true, Logger: quiet})
	require.NoError(t, err)
	defer tr.Close()
	sender := listen(t)
	defer sender.Close()
	tr.mu.Lock() // the reader stops at its first datagram: the buffer fills
	for range 500 {
		_, err := sender.WriteToUDP(make([]byte, 1000), conn.LocalAddr().(*net.UDPAddr))
		require.NoError(t, err)
	}
	tr.mu.Unlock()
	for i := 0; i < 1000 && tr.Stats().KernelDrops == 0; i++ {
		_, _ = sender.WriteToUDP(make([]byte, 10), conn.LocalAddr().(*net.UDPAddr))
		time.Sleep(10 * time.Millisecond)
	}
	assert.Positive(t, tr.Stats().KernelDrops)
}

func TestDropCountParsesControlMessages(t *testing.T) {
	_, ok := dropCount(nil)
	assert.False(t, ok)
	_, ok = dropCount([]byte{1, 2, 3})
	assert.False(t, ok)
	garbage := make([]byte, 64)
	for i := range garbage {
		garbage[i] = 0xff
	}
	_, ok = dropCount(garbage)
	assert.False(t, ok, "a length past the buffer")
}

// TestHandshakeRateLimits: initiations beyond the rate are refused
// before any Diffie-Hellman, and a flood from strangers leaves the
// peers' own bucket alone.
func TestHandshakeRateLimits(t *testing.T) {
	keys := nodeKeys(t, 1, 2)
	now := time.Unix(1000, 0)
	peerAddr := "10.0.0.2:7000"
	tr, err := build(Config{ID: 1, Key: keys[1], Logger: quiet, Now: func() time.Time { return now },
		Peers: map[replica.NodeID]Peer{2: {Addr: peerAddr, Keys: []PublicKey{keys[2].Public()}}}})
	require.NoError(t, err)
	tr.write = func([]byte, netip.AddrPort) error { return nil }
	stranger, err := GenerateKey()
	require.NoError(t, err)
	initiate := func(from PrivateKey, src string) Reason {
		_, msg, err := initiation(noiseKey(from), tr.PublicKey(), 1, 1)
		require.NoError(t, err)
		_, _, r, ok := tr.handle(now, netip.MustParseAddrPort(src), msg)
		if ok {
			return NumReasons
		}
		return r
	}
	counts := map[Reason]int{}
	for i := range 3 * OtherHandshakesPerSecond {
		counts[initiate(stranger, fmt.Sprintf("10.9.9.%d:1", i%200))]++
	}
	assert.Equal(t, map[Reason]int{UnknownSender: OtherHandshakesPerSecond, RateLimited: 2 * OtherHandshakesPerSecond}, counts)
	assert.Equal(t, NumReasons, initiate(keys[2], peerAddr), "the peer's own handshake is answered")
	now = now.Add(time.Second)
	assert.Equal(t, UnknownSender, initiate(stranger, "10.9.9.9:1"), "a second later, strangers' tokens are back")
}

func noiseKey(k PrivateKey) noise.DHKey {
	pub := k.Public()
	return noise.DHKey{Private: k[:], Public: pub[:]}
}

// TestDecodeAllocations: decoding allocates nothing for a bad payload,
// and for a good one a single string of its bytes: never more than the
// bytes received, whatever they are.
func TestDecodeAllocations(t *testing.T) {
	// 1,400 bytes of entries with bad role bytes (the node refuses them,
	// one by one, without formatting each).
	good := binary.AppendUvarint(nil, 230)
	for i := range 230 {
		good = appendEntry(good, replica.Entry{Channel: fmt.Sprintf("%03d", i), Role: rolefsm.Role(200)})
	}
	require.LessOrEqual(t, len(good), 1400)
	es, err := decode(good, nil)
	require.NoError(t, err)
	require.Len(t, es, 230)
	assert.Equal(t, "229", es[229].Channel)
	assert.Equal(t, rolefsm.Role(200), es[229].Role)
	run := func(p []byte) (allocs, bytes float64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		allocs = testing.AllocsPerRun(100, func() { es, _ = decode(p, es) })
		runtime.ReadMemStats(&after)
		return allocs, float64(after.TotalAlloc-before.TotalAlloc) / 101
	}
	allocs, size := run(good)
	assert.Equal(t, 1.0, allocs, "one string for the names; the entries reused")
	assert.LessOrEqual(t, size, float64(2*len(good)), "at most twice the bytes received")
	bad := bytes.Clone(good)
	bad[len(bad)-1] = 0x80 // a truncated last tail
	allocs, _ = run(bad)
	assert.Zero(t, allocs, "a bad payload is refused before anything is kept")
	allocs, _ = run(append(binary.AppendUvarint(nil, 1<<40), good...))
	assert.Zero(t, allocs, "a count past the payload's length is refused at once")
}
