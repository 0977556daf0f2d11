package udp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// TestDecodeAllocations: decoding allocates nothing for a bad payload,
// and for a good one a single string of its bytes: never more than the
// bytes received, whatever they are.
func TestDecodeAllocations(t *testing.T) {
	// 1,400 bytes of entries with bad role bytes (the node refuses them,
	// one by one, without formatting each).
	good := binary.AppendUvarint(nil, 230)
	for i := range 230 {
		good = appendEntry(good, replica.Entry{Channel: fmt.Sprintf("%03d", i), Role: rolefsm.Role(100)})
	}
	good = appendReports(good, nil)
	require.LessOrEqual(t, len(good), 1400)
	es, _, err := decode(good, nil)
	require.NoError(t, err)
	require.Len(t, es, 230)
	assert.Equal(t, "229", es[229].Channel)
	assert.Equal(t, rolefsm.Role(100), es[229].Role)
	run := func(p []byte) (allocs, bytes float64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		allocs = testing.AllocsPerRun(100, func() { es, _, _ = decode(p, es) })
		runtime.ReadMemStats(&after)
		return allocs, float64(after.TotalAlloc-before.TotalAlloc) / 101
	}
	allocs, size := run(good)
	assert.Equal(t, 1.0, allocs, "one string for the names; the entries reused")
	assert.LessOrEqual(t, size, float64(2*len(good)), "at most twice the bytes received")
	bad := bytes.Clone(good)
	bad[len(bad)-2] = 0x80 // a truncated last tail
	allocs, _ = run(bad)
	assert.Zero(t, allocs, "a bad payload is refused before anything is kept")
	allocs, _ = run(append(binary.AppendUvarint(nil, 1<<40), good...))
	assert.Zero(t, allocs, "a count past the payload's length is refused at once")
}

// TestOverheadAndMaxDatagram pins the wire's size: a sealed heartbeat
// is its entries and reports plus Overhead bytes (66, the reports'
// count included, against 96 for version 1's header and tag), and an
// entry that fills MaxDatagram to the byte goes out in one datagram.
func TestOverheadAndMaxDatagram(t *testing.T) {
	assert.Equal(t, 66, Overhead)
	trs := mesh(t, false, func(c *Config) { c.MaxDatagram = 150 }, 1, 2)
	a, b := trs[1], trs[2]
	settle(t, a, b)
	room := 150 - Overhead - 1 // one byte of count (the reports' is in Overhead; none here)
	name := strings.Repeat("n", room-3)
	before := a.Stats()
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 1, Entries: []replica.Entry{{Channel: name, Role: rolefsm.Replica, Tail: 127}}}))
	in := receive(t, b)
	assert.Equal(t, name, in.Batch.Entries[0].Channel)
	after := a.Stats()
	assert.Equal(t, uint64(1), after.DatagramsSent-before.DatagramsSent)
	assert.Equal(t, uint64(150), after.BytesSent-before.BytesSent)
	// Reports yield to the entry: the same entry with a report goes
	// out alone, in one datagram.
	before = a.Stats()
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 2,
		Entries: []replica.Entry{{Channel: name, Role: rolefsm.Replica, Tail: 127}}, Heard: []replica.Report{{Node: 1, Age: time.Second}}}))
	in = receive(t, b)
	assert.Equal(t, name, in.Batch.Entries[0].Channel)
	assert.Empty(t, in.Batch.Heard, "no room for the report")
	assert.Equal(t, uint64(1), a.Stats().DatagramsSent-before.DatagramsSent)
	err := a.Send(context.Background(), 2, replica.Batch{Entries: []replica.Entry{{Channel: name + "n"}}})
	require.Error(t, err, "one byte too many for a datagram")
}
