package replica

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Transport carries heartbeat batches between nodes: hashicorp/raft's
// and memberlist's Transport interfaces are its models. A Driver sends
// through it and reads its Inbox.
type Transport interface {
	// Send hands a batch to the transport for node to. It must not
	// block for long and must not keep b.Entries after it returns (the
	// Node reuses them). Heartbeats repeat, so a transport may drop a
	// batch it cannot deliver; an error says why it could not send.
	Send(ctx context.Context, to NodeID, b Batch) error
	// Inbox delivers the batches received, each at most once. It is
	// closed when the transport closes.
	Inbox() <-chan Inbound
	// Close stops the transport: Send fails from then on and the Inbox
	// is closed. Closing twice returns ErrTransportClosed.
	Close() error
}

// Inbound is a batch received by a transport.
type Inbound struct {
	Batch Batch
	// RTT is a round trip to the sender measured by the transport, if
	// HasRTT.
	RTT    time.Duration
	HasRTT bool
}

// MemNetwork is an in-memory network for tests and examples: each node
// joins with a MemTransport, and links between nodes can be cut and
// restored, or the network partitioned, at any time. Delivery is
// immediate and in order; a full inbox drops the batch, as a socket
// buffer would.
type MemNetwork struct {
	mu    sync.Mutex
	nodes map[NodeID]*MemTransport
	cut   map[[2]NodeID]bool
}

// NewMemNetwork returns a network with no node.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: make(map[NodeID]*MemTransport), cut: make(map[[2]NodeID]bool)}
}

// DefaultInboxSize is a MemTransport's inbox capacity when none is
// given.
const DefaultInboxSize = 64

// Join adds node id to the network and returns its transport, with an
// inbox of the given capacity (DefaultInboxSize if 0 or less). A node
// that is already on the network, and not closed, is an error.
func (m *MemNetwork) Join(id NodeID, inbox int) (*MemTransport, error) {
	if id == 0 {
		return nil, fmt.Errorf("replica: node id 0 (ids are 1-based)")
	}
	if inbox <= 0 {
		inbox = DefaultInboxSize
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.nodes[id]; old != nil && !old.closed {
		return nil, fmt.Errorf("replica: node %d is already on the network", id)
	}
	t := &MemTransport{net: m, id: id, inbox: make(chan Inbound, inbox)}
	m.nodes[id] = t
	return t, nil
}

func link(a, b NodeID) [2]NodeID { return [2]NodeID{min(a, b), max(a, b)} }

// Disconnect cuts the link between a and b, both ways.
func (m *MemNetwork) Disconnect(a, b NodeID) {
	m.mu.Lock()
	m.cut[link(a, b)] = true
	m.mu.Unlock()
}

// Connect restores the link between a and b.
func (m *MemNetwork) Connect(a, b NodeID) {
	m.mu.Lock()
	delete(m.cut, link(a, b))
	m.mu.Unlock()
}

// Partition cuts every link between the nodes in side and the nodes on
// the network outside it.
func (m *MemNetwork) Partition(side ...NodeID) {
	in := make(map[NodeID]bool, len(side))
	for _, id := range side {
		in[id] = true
	}
	m.mu.Lock()
	for a := range m.nodes {
		for b := range m.nodes {
			if in[a] && !in[b] {
				m.cut[link(a, b)] = true
			}
		}
	}
	m.mu.Unlock()
}

// Heal restores every link.
func (m *MemNetwork) Heal() {
	m.mu.Lock()
	clear(m.cut)
	m.mu.Unlock()
}

// MemTransport is one node's end of a MemNetwork.
type MemTransport struct {
	net    *MemNetwork
	id     NodeID
	inbox  chan Inbound
	closed bool // guarded by net.mu

	sent, delivered, dropped atomic.Uint64
}

// Send delivers a copy of b to node to, unless the link is cut, to is
// not on the network, or its inbox is full: then the batch is dropped
// (and counted), as heartbeats may be.
func (t *MemTransport) Send(_ context.Context, to NodeID, b Batch) error {
	m := t.net
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.closed {
		return ErrTransportClosed
	}
	t.sent.Add(1)
	peer := m.nodes[to]
	if peer == nil || peer.closed || m.cut[link(t.id, to)] {
		t.dropped.Add(1)
		return nil
	}
	// The batch is the sender's until its next Tick: the receiver
	// gets its own copy of what it holds.
	b.Entries = append([]Entry(nil), b.Entries...)
	b.Heard = append([]Report(nil), b.Heard...)
	select {
	case peer.inbox <- Inbound{Batch: b}:
		t.delivered.Add(1)
	default:
		t.dropped.Add(1)
	}
	return nil
}

// Inbox returns the channel of received batches.
func (t *MemTransport) Inbox() <-chan Inbound { return t.inbox }

// Close takes the node off the network and closes its inbox.
func (t *MemTransport) Close() error {
	m := t.net
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.closed {
		return ErrTransportClosed
	}
	t.closed = true
	close(t.inbox)
	return nil
}

// MemStats counts what a MemTransport did with the batches sent
// through it.
type MemStats struct {
	Sent, Delivered, Dropped uint64
}

// Stats returns the transport's counters.
func (t *MemTransport) Stats() MemStats {
	return MemStats{Sent: t.sent.Load(), Delivered: t.delivered.Load(), Dropped: t.dropped.Load()}
}
