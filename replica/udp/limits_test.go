package udp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
