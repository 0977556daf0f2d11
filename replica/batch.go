package replica

import (
	"math"
	"time"

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
	// HasLeader says the sender has a live leader on the channel: it
	// leads it, or it follows a leader it heard claim office within the
	// timeout (under Config.External, a leader its backend named whose
	// latest entry there claimed office: see Config.External). Only
	// such a sender's reports vouch for the channel's
	// leader (Corroborated): one that lost its leader here, or elected
	// another, may still hear the old one on another channel.
	HasLeader bool
	// Tail is the sender's tail_seq on the channel.
	Tail uint64
}

// Batch is one heartbeat from one node to one peer: an entry for every
// channel the two share on which the sender is Leader or Replica (under
// Config.External, for those whose entry is news: see there).
type Batch struct {
	From NodeID
	// Seq numbers the sender's heartbeats to this receiver, from 1, one
	// more for each batch sent to it (a gap says batches were lost on
	// the way: see Corroborated). A transport that
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
	// Heard is what the sender last heard of each node it shares a
	// channel with, the receiver among them: the evidence a Replica
	// weighs before it stands (Config.Evidence). It is per node, not
	// per channel, and a transport that splits a heartbeat repeats it
	// in every part. A node never heard has the Age NeverHeard; a
	// sender that weighs no reports (OwnSilence) sends none.
	Heard []Report
}

// NeverHeard is the Age of a node a report's sender has never heard.
const NeverHeard = time.Duration(math.MaxInt64)

// Report is what a batch's sender last heard of one node.
type Report struct {
	Node NodeID
	// Age is how long before the batch was built Node sent the latest
	// batch the sender took in from it (the time since it arrived, plus
	// half the RTT to Node when one is known). The receiver dates that
	// contact in its own clock, at the report's arrival less Age and
	// less half its RTT to the sender, so no clocks need agree. A
	// negative Age is refused.
	Age time.Duration
}

// Message is a batch to send to a peer.
type Message struct {
	To    NodeID
	Batch Batch
}
