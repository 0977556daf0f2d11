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

// settle waits until a's and b's handshakes are done and every session
// is confirmed and heard both ways, so that what follows is not queued
// behind them and no keep-alive that confirms a session is still to
// come (with crossed handshakes, the responder's keep-alive follows
// the initiator's, after both handshakes are done).
func settle(t *testing.T, trs ...*Transport) {
	t.Helper()
	for range 1000 { // a bound: 10 s
		done := true
		for _, tr := range trs {
			tr.mu.Lock()
			for _, p := range tr.peers {
				done = done && p.current != nil && p.hs == nil
				for _, s := range p.sessions {
					done = done && (tr.cfg.Insecure || s.confirmed && s.heard)
				}
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

// TestReportsRideEveryPart: what the sender heard of each node goes in
// every part of a split heartbeat, to the microsecond, a node never
// heard as such; and it costs the entries room, not correctness.
func TestReportsRideEveryPart(t *testing.T) {
	a, b := pair(t, false)
	settle(t, a, b)
	heard := []replica.Report{{Node: 1, Age: 1500 * time.Microsecond}, {Node: 2, Age: 0}, {Node: 3, Age: replica.NeverHeard}}
	es := entries(100, 32)
	for i := range es {
		es[i].HasLeader = i%3 == 0 // in the role byte's high bit
	}
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 1, Seq: 3, Entries: es, Heard: heard}))
	var got []replica.Entry
	for len(got) < len(es) {
		part := receive(t, b).Batch
		assert.Equal(t, heard, part.Heard, "every part carries the reports")
		got = append(got, part.Entries...)
	}
	assert.Equal(t, es, got)

	// No reports: none arrive.
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 1, Seq: 4}))
	assert.Nil(t, receive(t, b).Batch.Heard)

	// Past MaxReports, the lowest ids go.
	many := make([]replica.Report, MaxReports+6)
	for i := range many {
		many[i] = replica.Report{Node: replica.NodeID(i + 1), Age: time.Millisecond}
	}
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{From: 1, Seq: 5, Heard: many}))
	assert.Equal(t, many[:MaxReports], receive(t, b).Batch.Heard)
}
