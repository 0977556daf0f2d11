package replica

import (
	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// NodeID identifies a node: 1-based, 0 means none. It is the same type
// as policy.NodeID.
type NodeID = policy.NodeID

// Entry is one channel's heartbeat inside a Batch.
type Entry struct {
	// Channel is the channel's name.
	Channel string
	// Role is the sender's role on the channel: Leader or Replica
	// (Candidates and Idle nodes send no heartbeat), or Idle in a
	// goodbye: the sender is leaving the channel (see Node.Leave).
	Role rolefsm.Role
	// Tail is the sender's tail_seq on the channel.
	Tail uint64
}

// Batch is one heartbeat from one node to one peer: an entry for every
// channel the two share on which the sender is Leader or Replica.
type Batch struct {
	From NodeID
	// Seq numbers the sender's heartbeats, from 1. A transport that
	// splits a heartbeat over several datagrams gives each part the
	// same Seq, so the receiver sees them as one heartbeat; 0 means
	// unnumbered (the receiver numbers such batches itself, one
	// heartbeat each).
	Seq uint64
	// Incarnation identifies the sender's boot, as the receiving
	// transport counts them (replica/udp numbers the boots of each
	// peer it hears from 1, reading no clock; 0 from a transport that
	// does not). A batch of a later incarnation than the last heard
	// says the sender restarted: its heartbeats are numbered from 1
	// again, and count as newer than any before. One of an earlier
	// incarnation is stale.
	Incarnation uint64
	Entries     []Entry
}

// Message is a batch to send to a peer.
type Message struct {
	To    NodeID
	Batch Batch
}
