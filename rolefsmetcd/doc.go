// Package rolefsmetcd elects each channel's leader in etcd, for users
// who need one leader cluster-wide and a fencing token the whole
// cluster can check, rather than the heartbeat election's one leader
// per side of a partition.
//
// An Elector drives a replica.Node created with Config.External (and
// its Driver): etcd decides who leads, the node's heartbeats still
// carry roles and tails between nodes, but only as they change (see
// replica.Config.External), and every role change goes through the
// channel's Coordinator under a signal of the matrix:
//
//	what the elector sees                     transition
//	no leader key for the channel             Replica → Candidate (MissedHeartbeats), then it campaigns
//	its own key is the first one (won)        Candidate → Leader (ElectionWon)
//	another node's key is first (lost)        Candidate → Replica (ElectionLost); its key waits in line
//	a leader key, and none of its own         (a Replica follows it, and puts a key to wait in line)
//	its key in line is first now (the         Replica → Candidate → Leader in one pass, with no
//	  leader's went)                            request to etcd
//	a new leader key while Leader, or the     Leader → Replica (PeerLeaderObserved)
//	  session cannot be renewed in time
//	Relinquish (a graceful handover)          Leader → Idle (GracefulRelinquish), then it resigns
//
// One etcd lease (the session) serves every channel of the node; each
// channel is an election under Prefix/<channel>/, laid out as
// go.etcd.io/etcd/client/v3/concurrency lays out its elections: a key
// per candidate, named by its lease in hex, and the key with the lowest
// create revision is the leader. concurrency.NewElection(session,
// Prefix+"/"+channel).Leader reads the same leader. The leader key's
// create revision is the term's cluster-wide fencing token (Token); a
// store rejects a deposed leader's write with an etcd transaction that
// compares it (Token.Guard).
//
// A leader leaves office before its lease can have expired at the
// server: it steps down once the latest keep-alive that succeeded was
// sent more than TTL − Margin ago, as measured on its own monotonic
// clock. The server cannot have expired the lease before TTL after that
// keep-alive left the node, so this holds while the node's clock runs
// no slower than the server's by more than Margin/TTL, and the step-
// down is not delayed by more than what is left of the margin (see
// Config.Margin).
package rolefsmetcd
