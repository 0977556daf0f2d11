// Package replica is the runtime of one node: it turns heartbeats and
// the passage of time into role transitions on every channel the node
// holds.
//
// A Node has no goroutines, reads no clock and does no I/O, in the way
// etcd-io/raft's RawNode works: time and inbound heartbeat batches are
// passed in (Tick, Step), and the batches to send come out of Tick.
// Each channel has its own *rolefsm.Coordinator, so every role change
// goes through the matrix and reaches the coordinator's observers and
// audit log as usual. Health and RTT of a peer are kept once per node
// and shared by all channels; a heartbeat batch carries every channel
// the sender shares with the receiver.
//
// The rules a Node applies, each pinned by a script under testdata/:
//
//   - Opening a channel makes it a Replica (CapabilitySelected) that
//     waits for a leader.
//   - A Replica follows the first node it hears claim Leader. It stays
//     with the leader it follows while that leader's claim is fresh and
//     the leader outranks a newcomer by the dual-leader tiebreak
//     (policy.KeepLeadership); otherwise it follows the newcomer.
//   - A leader that speaks as a Replica has left office: the next claim
//     from anyone is followed at once.
//   - A Replica that has not heard its leader claim office for the
//     heartbeat timeout, or that has waited that long for any leader,
//     stands for election (MissedHeartbeats).
//   - A Candidate elects on the Tick after the one in which it stood,
//     with the node's election policy over the channel's replica set
//     (ElectionWon or ElectionLost). A winner takes the channel's lease
//     for fencing at that moment; a loser follows the winner it elected,
//     or waits for a leader if nobody was eligible.
//   - A Leader that hears another node claim Leader concedes
//     (PeerLeaderObserved) unless it outranks that node.
//   - Only Leaders and Replicas send heartbeats.
//   - Disk pressure withdraws the channel under the signal for its role;
//     relief rejoins it. Close and Relinquish leave it Idle until Rejoin.
//   - Leave (a graceful shutdown) relinquishes and closes everything and
//     says goodbye; a follower whose leader says goodbye stands on its
//     next Tick, and a node that said goodbye is not elected.
//
// Driver runs a Node on a Transport with a real clock; MemNetwork is an
// in-memory Transport for tests and examples.
package replica
