package rolefsmotel

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// points reads every data point of the collection by metric name, as
// "attr=value,..." → value.
func points(t *testing.T, reader *sdkmetric.ManualReader) map[string]map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			ps := map[string]int64{}
			var dps []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				assert.True(t, d.IsMonotonic, "%s is a counter", m.Name)
				dps = d.DataPoints
			case metricdata.Gauge[int64]:
				dps = d.DataPoints
			default:
				t.Fatalf("%s: %T", m.Name, m.Data)
			}
			for _, dp := range dps {
				ps[dp.Attributes.Encoded(attribute.DefaultEncoder())] = dp.Value
			}
			out[m.Name] = ps
		}
	}
	return out
}

// TestSetExportsTheCoordinators: the same figures as rolefsmprom's, read
// through the SDK's manual reader.
func TestSetExportsTheCoordinators(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, provider.Shutdown(context.Background())) }()
	s, err := NewSet(provider.Meter("test"))
	require.NoError(t, err)

	orders, err := rolefsm.NewCoordinator(rolefsm.WithName("orders"))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = orders.Fire(ctx, rolefsm.CapabilitySelected)
	require.NoError(t, err)
	_, err = orders.Fire(rolefsm.ColdStart(ctx), rolefsm.MissedHeartbeats)
	require.NoError(t, err)
	_, err = orders.Fire(ctx, rolefsm.ElectionWon)
	require.NoError(t, err)
	_, err = orders.Transition(ctx, rolefsm.Candidate, rolefsm.MissedHeartbeats)
	require.Error(t, err)
	require.NoError(t, s.Add(orders))
	unnamed, _ := rolefsm.NewCoordinator()
	assert.ErrorIs(t, s.Add(unnamed), ErrUnnamedChannel)
	again, _ := rolefsm.NewCoordinator(rolefsm.WithName("orders"))
	assert.ErrorIs(t, s.Add(again), ErrDuplicateChannel)

	got := points(t, reader)
	assert.Equal(t, map[string]int64{
		"channel=orders,from=Idle,signal=CapabilitySelected,to=Replica":    1,
		"channel=orders,from=Replica,signal=MissedHeartbeats,to=Candidate": 1,
		"channel=orders,from=Candidate,signal=ElectionWon,to=Leader":       1,
	}, got["rolefsm.transitions"])
	assert.Equal(t, map[string]int64{"channel=orders,kind=invalid_pair": 1, "channel=orders,kind=signal_mismatch": 0}, got["rolefsm.rejected_transitions"])
	assert.Equal(t, map[string]int64{"channel=orders": 1}, got["rolefsm.leader_changes"])
	assert.Equal(t, map[string]int64{"channel=orders": 0}, got["rolefsm.election_thrash"], "a cold start is not thrash")
	assert.Equal(t, map[string]int64{"channel=orders": 1}, got["rolefsm.cold_start_elections"])
	assert.Equal(t, map[string]int64{"channel=orders": 0}, got["rolefsm.observer_panics"])
	assert.Equal(t, map[string]int64{"channel=orders": 3}, got["rolefsm.generation"])
	assert.Equal(t, map[string]int64{"channel=orders,role=Idle": 0, "channel=orders,role=Replica": 0,
		"channel=orders,role=Candidate": 0, "channel=orders,role=Leader": 1}, got["rolefsm.role"])

	// Removed, it has no points any more; closed, the set reads nothing.
	s.Remove(orders)
	assert.Empty(t, points(t, reader)["rolefsm.generation"])
	require.NoError(t, s.Add(orders))
	require.NoError(t, s.Close())
	assert.Empty(t, points(t, reader)["rolefsm.generation"])
}

// TestTransport: a pair of insecure transports; one batch goes across,
// a garbage datagram is dropped.
func TestTransport(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
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
	junk, err := net.DialUDP("udp", nil, cb.LocalAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer junk.Close()
	_, err = junk.Write([]byte("garbage"))
	require.NoError(t, err)
	require.NoError(t, a.Send(context.Background(), 2, replica.Batch{Seq: 1, Entries: []replica.Entry{{Channel: "orders", Role: rolefsm.Leader}}}))
	select {
	case <-b.Inbox():
	case <-time.After(10 * time.Second): // a bound, not a timing claim
		t.Fatal("nothing received")
	}

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, provider.Shutdown(context.Background())) }()
	reg, err := RegisterTransport(provider.Meter("test"), b)
	require.NoError(t, err)
	defer func() { require.NoError(t, reg.Unregister()) }()
	got := points(t, reader)
	assert.Equal(t, int64(0), got["rolefsm.transport.datagrams"]["direction=sent"])
	assert.GreaterOrEqual(t, got["rolefsm.transport.datagrams"]["direction=received"], int64(2))
	assert.Len(t, got["rolefsm.transport.dropped"], int(udp.NumReasons), "a point per reason, from the start")
	assert.GreaterOrEqual(t, got["rolefsm.transport.dropped"]["reason=garbage"], int64(1))
	assert.Equal(t, map[string]int64{"peer=1": 1}, got["rolefsm.transport.peer.session"])
	assert.Equal(t, map[string]int64{"peer=1": 1}, got["rolefsm.transport.peer.delivered"])
	assert.Equal(t, map[string]int64{"peer=1": 0}, got["rolefsm.transport.peer.auth_failures"])
	assert.Equal(t, int64(0), got["rolefsm.transport.bytes"]["direction=sent"])
	assert.Greater(t, got["rolefsm.transport.bytes"]["direction=received"], int64(7), "the garbage and the batch")
	assert.Equal(t, map[string]int64{"kind=sent": 0, "kind=answered": 0, "kind=completed": 0}, got["rolefsm.transport.handshakes"], "insecure: none")
	assert.Equal(t, map[string]int64{"": 1}, got["rolefsm.transport.insecure"])
	assert.Equal(t, map[string]int64{"": 0}, got["rolefsm.transport.duplicate_identity"])
	assert.Contains(t, got, "rolefsm.transport.kernel_drops")

	_, err = RegisterTransport(provider.Meter("test"), nil)
	assert.Error(t, err)
}
