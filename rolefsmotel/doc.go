// Package rolefsmotel exports rolefsm coordinators' stats and a UDP
// transport's counters as OpenTelemetry metrics, the same instruments
// as rolefsmprom's Prometheus collectors, for services that report
// through go.opentelemetry.io/otel/metric.
//
// The instruments are observable: they read Coordinator.Counts and
// udp.Transport.Stats when the SDK collects, so there is no second set
// of counters to keep in step. Every coordinator's data points carry
// its name (rolefsm.WithName) as the channel attribute.
//
//	rolefsm.transitions{channel,from,to,signal}   counter: committed transitions, per triple that has fired
//	rolefsm.rejected_transitions{channel,kind}    counter: kind = invalid_pair or signal_mismatch
//	rolefsm.leader_changes{channel}               counter: entries into Leader
//	rolefsm.election_thrash{channel}              counter: elections of a channel that had a leader
//	rolefsm.cold_start_elections{channel}         counter: first elections (rolefsm.ColdStart)
//	rolefsm.observer_panics{channel}              counter: panics recovered from observers and the audit logger
//	rolefsm.role{channel,role}                    gauge: 1 for the current role, 0 for the others
//	rolefsm.generation{channel}                   gauge: the fencing generation
//
//	rolefsm.transport.datagrams{direction}        counter: sent, received (every datagram read, dropped or not)
//	rolefsm.transport.bytes{direction}            counter: their bytes
//	rolefsm.transport.kernel_drops                counter: dropped by the kernel for a full socket buffer (Linux)
//	rolefsm.transport.handshakes{kind}            counter: sent, answered, completed
//	rolefsm.transport.duplicate_identity          counter: two processes found speaking with one node's key
//	rolefsm.transport.insecure                    gauge: 1 if the transport runs without keys
//	rolefsm.transport.dropped{reason}             counter: one point per udp.Reason
//	rolefsm.transport.peer.session{peer}          gauge: 1 while a session with the peer is up
//	rolefsm.transport.peer.delivered{peer}        counter: the peer's batches delivered
//	rolefsm.transport.peer.auth_failures{peer}    counter: datagrams from its address that failed authentication
//
// What a replica.Driver reports through OnError (rolefsmprom's
// DriverErrors) has no instrument here yet. The module is apart from
// the core, as rolefsmprom is, so that the core pulls in no metrics API.
package rolefsmotel
