// Package sim is a deterministic cluster simulator for the replica
// roles: N nodes, each a replica.Node holding one channel, driven over
// a virtual clock exactly as a service drives one (Step on every
// heartbeat delivered, Tick every step), under partitions, crashes,
// disk pressure, channel closes and message loss. The simulator owns
// the network model, the faults, the application's writes and
// catch-up, the invariants and the sweeps; every role decision is the
// replica's, and every role change goes through Coordinator.Transition.
//
// A run is a pure function of its Config: the same seed gives the same
// trace, byte for byte. Invariants are checked at every step and each
// violation is reported by name (see the Inv constants).
package sim
