package rolefsmprom

import (
	"context"
	"errors"
	"fmt"
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

func TestTransportCollector(t *testing.T) {
	key, err := udp.GenerateKey()
	require.NoError(t, err)
	keys, err := udp.ParseKeys([]byte(key))
	require.NoError(t, err)
	ca, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	cb, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	a, err := udp.New(udp.Config{ID: 1, Conn: ca, Keys: keys, Peers: map[replica.NodeID]string{2: cb.LocalAddr().String()}})
	require.NoError(t, err)
	defer a.Close()
	b, err := udp.New(udp.Config{ID: 2, Conn: cb, Keys: keys, Peers: map[replica.NodeID]string{1: ca.LocalAddr().String()}})
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
	require.Equal(t, uint64(udp.HeaderSize+udp.TagSize+1+1+6+1+1), size, "header, tag, count, name length, name, role, tail")

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
rolefsm_transport_dropped_total{reason="garbage"} 2
rolefsm_transport_dropped_total{reason="inbox_full"} 0
rolefsm_transport_dropped_total{reason="misdirected"} 0
rolefsm_transport_dropped_total{reason="oversize"} 0
rolefsm_transport_dropped_total{reason="replayed"} 0
rolefsm_transport_dropped_total{reason="unknown_sender"} 0
rolefsm_transport_dropped_total{reason="version"} 0
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
