// Package sim is a deterministic cluster simulator for the replica
// roles: N nodes, each with a real rolefsm.Coordinator and a
// policy.Tracker, driven over a virtual clock by the rules of package
// policy, under partitions, crashes, disk pressure, channel closes and
// message loss. Every role change goes through Coordinator.Transition.
//
// A run is a pure function of its Config: the same seed gives the same
// trace, byte for byte. Invariants are checked at every step and each
// violation is reported by name (see the Inv constants).
package sim
