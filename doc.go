// Package rolefsm keeps the role of a replicated channel (Leader,
// Replica, Candidate, Idle) correct.
//
// It re-implements the replica state machine of net-mesh's RedEX layer:
// ten signals, each driving one destination role from the roles it is
// declared for, and a pure [Apply] that validates a (from, to, signal)
// triple with two error kinds, [InvalidPairError] and
// [SignalMismatchError].
//
// A [Coordinator] holds one channel's role. It commits transitions one
// at a time through a looplab/fsm machine built from the same
// declaration, reads its role without a lock, counts what it did
// ([Coordinator.Stats]) and reports every attempt to observers and to an
// optional slog audit logger.
//
// Around the matrix, package policy holds the runtime rules that pick
// the signals (heartbeat timeout, elections, the dual-leader tiebreak,
// disk pressure); package replica runs them on one node for every
// channel it holds (a pure Node, a Driver with the clock, a Transport:
// replica/udp between processes); package server assembles a whole node
// for a service to embed; package sim drives the rules over a
// deterministic simulated cluster to show that the roles converge; and
// rolefsmtest is a kit for tests. docs/design.md maps how they connect.
package rolefsm
