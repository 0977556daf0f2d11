package rolefsmprom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

var quiet = slog.New(slog.DiscardHandler)

// TestTransportCollector runs an insecure pair, whose datagrams are
// exactly counted (no handshake), then reads a pair with keys.
func TestTransportCollector(t *testing.T) {
	ca, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	cb, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	a, err := udp.New(udp.Config{ID: 1, Conn: ca, Insecure: true, Logger: quiet,
		Peers: map[replica.NodeID]udp.Peer{2: {Addr: cb.LocalAddr().String()}}})
	require.NoError(t, err)
	defer a.Close()
	b, err := udp.New(udp.Config{ID: 2, Conn: cb, Insecure: true, Logger: quiet,
		Peers: map[replica.NodeID]udp.Peer{1: {Addr: ca.LocalAddr().String()}}})
	require.NoError(t, err)
	defer b.Close()

	// Two garbage datagrams, then a batch of one entry: once the batch
	// is delivered, all three were read.
	junk, err := net.DialUDP("udp", nil, cb.LocalAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer junk.Close()
	for range 2 {
		_, err = junk.Write([]byte("garbage"))
		require.NoError(t, err)
	}
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 1, Entries: []replica.Entry{{Channel: "orders", Role: rolefsm.Leader, Tail: 3}}}))
	select {
	case <-b.Inbox():
	case <-time.After(10 * time.Second): // a bound, not a timing claim
		t.Fatal("nothing received")
	}
	size := a.Stats().BytesSent
	require.Equal(t, uint64(udp.PlainHeaderSize+udp.BodyHeaderSize+1+1+6+1+1+1), size, "header, body header, count, name length, name, role, tail, reports' count")

	want := fmt.Sprintf(`
# HELP rolefsm_transport_bytes_received_total Bytes read from the socket, in datagrams.
# TYPE rolefsm_transport_bytes_received_total counter
rolefsm_transport_bytes_received_total %d
# HELP rolefsm_transport_bytes_sent_total Bytes sent, in datagrams.
# TYPE rolefsm_transport_bytes_sent_total counter
rolefsm_transport_bytes_sent_total 0
# HELP rolefsm_transport_datagrams_received_total Datagrams read from the socket, dropped or not.
# TYPE rolefsm_transport_datagrams_received_total counter
rolefsm_transport_datagrams_received_total 3
# HELP rolefsm_transport_datagrams_sent_total Datagrams sent.
# TYPE rolefsm_transport_datagrams_sent_total counter
rolefsm_transport_datagrams_sent_total 0
# HELP rolefsm_transport_dropped_total Datagrams dropped and never acted on, by reason.
# TYPE rolefsm_transport_dropped_total counter
rolefsm_transport_dropped_total{reason="bad_tag"} 0
rolefsm_transport_dropped_total{reason="expired"} 0
rolefsm_transport_dropped_total{reason="garbage"} 2
rolefsm_transport_dropped_total{reason="inbox_full"} 0
rolefsm_transport_dropped_total{reason="misdirected"} 0
rolefsm_transport_dropped_total{reason="oversize"} 0
rolefsm_transport_dropped_total{reason="rate_limited"} 0
rolefsm_transport_dropped_total{reason="replayed"} 0
rolefsm_transport_dropped_total{reason="superseded"} 0
rolefsm_transport_dropped_total{reason="unknown_sender"} 0
rolefsm_transport_dropped_total{reason="unknown_session"} 0
rolefsm_transport_dropped_total{reason="version"} 0
# HELP rolefsm_transport_duplicate_identity_total Times two processes were found speaking with one node's key (a peer's, or this node's).
# TYPE rolefsm_transport_duplicate_identity_total counter
rolefsm_transport_duplicate_identity_total 0
# HELP rolefsm_transport_handshakes_total Handshakes: initiations sent, initiations answered, and ours completed.
# TYPE rolefsm_transport_handshakes_total counter
rolefsm_transport_handshakes_total{kind="answered"} 0
rolefsm_transport_handshakes_total{kind="completed"} 0
rolefsm_transport_handshakes_total{kind="sent"} 0
# HELP rolefsm_transport_insecure 1 if the transport runs without keys: unauthenticated, in the clear.
# TYPE rolefsm_transport_insecure gauge
rolefsm_transport_insecure 1
# HELP rolefsm_transport_kernel_drops_total Datagrams the kernel dropped because the socket's buffer was full.
# TYPE rolefsm_transport_kernel_drops_total counter
rolefsm_transport_kernel_drops_total 0
# HELP rolefsm_transport_peer_auth_failures_total Datagrams from the peer's configured address that failed authentication.
# TYPE rolefsm_transport_peer_auth_failures_total counter
rolefsm_transport_peer_auth_failures_total{peer="1"} 0
# HELP rolefsm_transport_peer_delivered_total The peer's batches delivered.
# TYPE rolefsm_transport_peer_delivered_total counter
rolefsm_transport_peer_delivered_total{peer="1"} 1
# HELP rolefsm_transport_peer_session 1 while a session with the peer is up (without keys: once it was heard).
# TYPE rolefsm_transport_peer_session gauge
rolefsm_transport_peer_session{peer="1"} 1
`, size+2*7)
	col := NewTransportCollector(b)
	require.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(want)))
	problems, err := testutil.CollectAndLint(col)
	require.NoError(t, err)
	assert.Empty(t, problems)

	require.NoError(t, testutil.CollectAndCompare(NewTransportCollector(a, WithNamespace("svc")), strings.NewReader(fmt.Sprintf(`
# HELP svc_transport_datagrams_sent_total Datagrams sent.
# TYPE svc_transport_datagrams_sent_total counter
svc_transport_datagrams_sent_total 1
# HELP svc_transport_bytes_sent_total Bytes sent, in datagrams.
# TYPE svc_transport_bytes_sent_total counter
svc_transport_bytes_sent_total %d
`, size)), "svc_transport_datagrams_sent_total", "svc_transport_bytes_sent_total"))

	assert.ErrorContains(t, testutil.CollectAndCompare(NewTransportCollector(nil), strings.NewReader("")), "nil Transport")

	// With keys: a handshake each way, and not insecure.
	ka, err := udp.GenerateKey()
	require.NoError(t, err)
	kb, err := udp.GenerateKey()
	require.NoError(t, err)
	cc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	cd, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	c, err := udp.New(udp.Config{ID: 1, Conn: cc, Key: ka, Logger: quiet,
		Peers: map[replica.NodeID]udp.Peer{2: {Addr: cd.LocalAddr().String(), Keys: []udp.PublicKey{kb.Public()}}}})
	require.NoError(t, err)
	defer c.Close()
	d, err := udp.New(udp.Config{ID: 2, Conn: cd, Key: kb, Logger: quiet,
		Peers: map[replica.NodeID]udp.Peer{1: {Addr: cc.LocalAddr().String(), Keys: []udp.PublicKey{ka.Public()}}}})
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, c.Send(context.Background(), 2, replica.Batch{Seq: 1}))
	select {
	case <-d.Inbox():
	case <-time.After(10 * time.Second): // a bound, not a timing claim
		t.Fatal("nothing received")
	}
	require.NoError(t, testutil.CollectAndCompare(NewTransportCollector(c), strings.NewReader(`
# HELP rolefsm_transport_insecure 1 if the transport runs without keys: unauthenticated, in the clear.
# TYPE rolefsm_transport_insecure gauge
rolefsm_transport_insecure 0
`), "rolefsm_transport_insecure"))
	assert.GreaterOrEqual(t, c.Stats().HandshakesSent, uint64(1))
	assert.GreaterOrEqual(t, c.Stats().HandshakesCompleted, uint64(1))
}

func TestDriverErrors(t *testing.T) {
	var passed []error
	e := NewDriverErrors(func(err error) { passed = append(passed, err) })
	errs := []error{
		&replica.StepError{From: 2, Dropped: []replica.EntryError{
			{Channel: "a", Err: replica.ErrUnknownChannel},
			{Channel: "b", Err: replica.ErrUnknownChannel},
			{Channel: "c", Err: replica.ErrNotInReplicaSet},
			{Channel: "d", Err: replica.ErrDuplicateEntry},
			{Channel: "e", Err: fmt.Errorf("%w: Candidate", replica.ErrBadRole)},
			{Channel: "f", Err: errors.New("something new")},
		}},
		fmt.Errorf("%w: node 1", replica.ErrFromSelf),
		fmt.Errorf("%w: node 9", replica.ErrUnknownPeer),
		fmt.Errorf("%w: heartbeat 3 from node 2 after 4", replica.ErrStaleBatch),
		fmt.Errorf("%w: heartbeat 3 from node 2 after 5", replica.ErrStaleBatch),
		errors.New("udp: sending to node 2: connection refused"),
		nil,
	}
	for _, err := range errs {
		e.Observe(err)
	}
	assert.Equal(t, errs[:len(errs)-1], passed, "every error is passed on, nil is not")
	require.NoError(t, testutil.CollectAndCompare(e, strings.NewReader(`
# HELP rolefsm_node_batches_dropped_total Heartbeat batches the node refused whole, by reason.
# TYPE rolefsm_node_batches_dropped_total counter
rolefsm_node_batches_dropped_total{reason="from_self"} 1
rolefsm_node_batches_dropped_total{reason="stale"} 2
rolefsm_node_batches_dropped_total{reason="unknown_peer"} 1
# HELP rolefsm_node_entries_dropped_total Heartbeat entries the node refused, by reason.
# TYPE rolefsm_node_entries_dropped_total counter
rolefsm_node_entries_dropped_total{reason="bad_role"} 1
rolefsm_node_entries_dropped_total{reason="duplicate_entry"} 1
rolefsm_node_entries_dropped_total{reason="not_in_replica_set"} 1
rolefsm_node_entries_dropped_total{reason="unknown_channel"} 2
# HELP rolefsm_node_errors_total Other errors the driver reported: failed sends, bad RTTs.
# TYPE rolefsm_node_errors_total counter
rolefsm_node_errors_total 2
`)))
	problems, err := testutil.CollectAndLint(e)
	require.NoError(t, err)
	assert.Empty(t, problems)
	NewDriverErrors(nil).Observe(replica.ErrFromSelf) // no next: no panic
}
