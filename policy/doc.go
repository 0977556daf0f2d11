// Package policy holds the runtime rules that drive a replica's role
// around the transition matrix, as pure functions of what a node knows:
// the heartbeat rule (when a leader counts as lost), the election
// policies (who wins among the healthy replicas), the dual-leader
// tiebreak, and the choice of disk-pressure signal.
//
// Nothing here reads a clock, sends a message or holds a lock: callers
// pass the time and the view in, and apply the signal a rule returns
// through rolefsm.Coordinator. Package replica applies them to every
// channel of a node; package sim runs replicas over a virtual cluster.
package policy
