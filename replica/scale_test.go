package replica

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// What a channel costs a node that holds many: the live heap of one
// channel with a five-node replica set, against a bare coordinator.

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// bigNode returns node 1 holding n channels ch000001… with replica set
// {1, …, 5}, each a Replica waiting for a leader.
func bigNode(tb testing.TB, n int) *Node {
	tb.Helper()
	hb, err := policy.NewHeartbeat(500*time.Millisecond, 3)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Unix(0, 0)
	node, err := NewNode(Config{ID: 1, Heartbeat: hb, Policy: policy.HighestTail}, now)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := node.Open(context.Background(), now, ChannelConfig{Name: fmt.Sprintf("ch%06d", i), Replicas: []NodeID{1, 2, 3, 4, 5}}); err != nil {
			tb.Fatal(err)
		}
	}
	return node
}

// BenchmarkHeapNodeChannel reports the live heap per channel of a node
// that holds b.N of them.
func BenchmarkHeapNodeChannel(b *testing.B) {
	before := liveHeap()
	node := bigNode(b, b.N)
	after := liveHeap()
	runtime.KeepAlive(node)
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "B/channel")
}

// BenchmarkBaselineHeapCoordinator is the coordinator alone, named as a
// node names it.
func BenchmarkBaselineHeapCoordinator(b *testing.B) {
	before := liveHeap()
	cs := make([]*rolefsm.Coordinator, b.N)
	for i := range cs {
		var err error
		if cs[i], err = rolefsm.NewCoordinator(rolefsm.WithName(fmt.Sprintf("ch%06d", i+1))); err != nil {
			b.Fatal(err)
		}
	}
	after := liveHeap()
	runtime.KeepAlive(cs)
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "B/channel")
}
