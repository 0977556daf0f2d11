package sim

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// Defaults, as upstream's deterministic simulation.
const (
	DefaultNodes     = 5
	DefaultSteps     = 400
	DefaultStep      = 50 * time.Millisecond
	DefaultFaultRate = 0.02
	// MaxNodes bounds Config.Nodes.
	MaxNodes = 64
)

// Faults is a set of fault kinds the simulator injects at random.
type Faults uint8

// The fault kinds.
const (
	// Partition splits the nodes into two sides that cannot hear each
	// other, then heals.
	Partition Faults = 1 << iota
	// Kill crashes a node (no transition: its process is gone), then
	// revives it as a new process that joins as a Replica.
	Kill
	// Disk puts a node under disk pressure, so it withdraws to Idle
	// under the signal for its role, then relieves it.
	Disk
	// Close closes the channel on a node (ChannelClose), then reopens it.
	Close
	// Loss drops a share (50–100 %) of the heartbeats on one directed
	// link, then restores it.
	Loss

	// AllFaults is every kind.
	AllFaults = Partition | Kill | Disk | Close | Loss
)

var faultNames = [...]string{"partition", "kill", "disk", "close", "loss"}

// String returns the set as ParseFaults reads it: "none", or the kinds
// joined by commas.
func (f Faults) String() string {
	if f == 0 {
		return "none"
	}
	var b strings.Builder
	for i, name := range faultNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(name)
		}
	}
	if rest := f &^ AllFaults; rest != 0 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "Faults(%#x)", uint8(rest))
	}
	return b.String()
}

// ParseFaults reads a comma-separated list of fault kinds (partition,
// kill, disk, close, loss), "all" or "none", without regard to case;
// "all" and "none" stand alone.
func ParseFaults(s string) (Faults, error) {
	switch strings.ToLower(s) {
	case "all":
		return AllFaults, nil
	case "none", "":
		return 0, nil
	}
	var f Faults
	for _, part := range strings.Split(s, ",") {
		if p := strings.ToLower(part); p == "all" || p == "none" {
			return 0, fmt.Errorf("sim: faults %q: %q stands alone, not in a list", s, part)
		}
		found := false
		for i, name := range faultNames {
			if strings.EqualFold(part, name) {
				f |= 1 << i
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("sim: unknown fault %q (want partition, kill, disk, close, loss, all or none)", part)
		}
	}
	return f, nil
}

// EventKind is the kind of a scripted fault event.
type EventKind uint8

// The scripted events. Node and Peer are node ids, 1 to Nodes.
const (
	// Cut splits the cluster: the nodes in Side on one side, the rest
	// on the other. It replaces any partition in force.
	Cut EventKind = iota + 1
	// Heal ends the partition.
	Heal
	// LinkDown cuts the link between Node and Peer, both ways.
	LinkDown
	// LinkUp restores the link between Node and Peer.
	LinkUp
	// Lossy drops the share Rate of the heartbeats from Node to Peer
	// (one way); Rate 0 restores the link.
	Lossy
	// Crash kills Node.
	Crash
	// Revive restarts Node as a new process.
	Revive
	// Pressure puts Node under disk pressure.
	Pressure
	// Relieve ends Node's disk pressure.
	Relieve
	// CloseChannel closes the channel on Node.
	CloseChannel
	// Reopen reopens the channel on Node.
	Reopen
)

var eventNames = [...]string{"", "cut", "heal", "link-down", "link-up", "lossy", "crash", "revive", "pressure", "relieve", "close", "reopen"}

// String returns the event kind's name.
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one scripted fault: at the start of step Step, before any
// message is delivered.
type Event struct {
	Step int
	Kind EventKind
	Node policy.NodeID
	Peer policy.NodeID
	Side []policy.NodeID
	Rate float64
}

// Config describes one simulated run. The zero value of a field means
// its default.
type Config struct {
	// Nodes is the cluster size, 1 to MaxNodes (default 5).
	Nodes int
	// Seed selects the run: the same Config gives the same trace.
	Seed uint64
	// Steps is the run's length in steps (default 400).
	Steps int
	// Step is the virtual time one step takes (default 50 ms).
	Step time.Duration
	// Heartbeat is the failure-detection rule (default 500 ms × 3).
	Heartbeat policy.Heartbeat
	// Policy decides elections (default policy.HighestTail).
	Policy policy.Policy
	// Evidence is what a Replica weighs before it stands (default
	// replica.Corroborated, the replica set's reports, or
	// replica.OwnSilence under policy.Upstream: see replica.Config).
	Evidence replica.Evidence
	// Faults are the kinds injected at random, each step with
	// probability FaultRate (default 0.02), until FaultsUntil (default
	// three quarters of the run), when every random fault still in
	// force ends.
	Faults      Faults
	FaultRate   float64
	FaultsUntil int
	// Script lists faults injected at given steps, in addition to the
	// random ones. Faults stop after the later of FaultsUntil (if any
	// random fault is enabled) and the last scripted step.
	Script []Event
}

// ErrBadConfig is matched by every configuration error.
var ErrBadConfig = errors.New("sim: bad configuration")

// normalized returns c with defaults filled in, or an error matching
// ErrBadConfig that says what is wrong.
func (c Config) normalized() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...)
	}
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.Steps == 0 {
		c.Steps = DefaultSteps
	}
	if c.Step == 0 {
		c.Step = DefaultStep
	}
	if c.Policy == nil {
		c.Policy = policy.HighestTail
	}
	if c.FaultRate == 0 {
		c.FaultRate = DefaultFaultRate
	}
	if c.FaultsUntil == 0 {
		c.FaultsUntil = c.Steps - c.Steps/4
	}
	switch {
	case c.Nodes < 1 || c.Nodes > MaxNodes:
		return bad("nodes %d, want 1 to %d", c.Nodes, MaxNodes)
	case c.Steps < 1 || c.Steps > 10_000_000:
		return bad("steps %d, want 1 to 10000000", c.Steps)
	case c.Step < time.Millisecond:
		return bad("step %v, want at least 1ms", c.Step)
	case c.Heartbeat.Interval() < c.Step:
		return bad("heartbeat interval %v is shorter than a step (%v)", c.Heartbeat.Interval(), c.Step)
	case !(c.FaultRate >= 0 && c.FaultRate <= 1):
		return bad("fault rate %v, want 0 to 1", c.FaultRate)
	case c.FaultsUntil < 0 || c.FaultsUntil > c.Steps:
		return bad("faults until step %d, want 0 to %d", c.FaultsUntil, c.Steps)
	case c.Faults&^AllFaults != 0:
		return bad("unknown faults %v", c.Faults)
	}
	for i, e := range c.Script {
		if err := e.check(c.Nodes, c.Steps); err != nil {
			return bad("script event %d (%v at step %d): %v", i, e.Kind, e.Step, err)
		}
		if i > 0 && e.Step < c.Script[i-1].Step {
			return bad("script event %d at step %d comes before event %d at step %d", i, e.Step, i-1, c.Script[i-1].Step)
		}
	}
	return c, nil
}

func (e Event) check(nodes, steps int) error {
	node := func(n policy.NodeID) error {
		if n < 1 || n > policy.NodeID(nodes) {
			return fmt.Errorf("node %d, want 1 to %d", n, nodes)
		}
		return nil
	}
	if e.Step < 0 || e.Step >= steps {
		return fmt.Errorf("step %d, want 0 to %d", e.Step, steps-1)
	}
	switch e.Kind {
	case Cut:
		if len(e.Side) == 0 || len(e.Side) >= nodes {
			return fmt.Errorf("side of %d nodes, want 1 to %d", len(e.Side), nodes-1)
		}
		seen := make(map[policy.NodeID]bool, len(e.Side))
		for _, n := range e.Side {
			if err := node(n); err != nil {
				return err
			}
			if seen[n] {
				return fmt.Errorf("node %d twice in the side", n)
			}
			seen[n] = true
		}
	case Heal:
	case LinkDown, LinkUp, Lossy:
		if err := node(e.Node); err != nil {
			return err
		}
		if err := node(e.Peer); err != nil {
			return err
		}
		if e.Node == e.Peer {
			return fmt.Errorf("a link needs two nodes, got %d twice", e.Node)
		}
		if e.Kind == Lossy && !(e.Rate >= 0 && e.Rate <= 1) {
			return fmt.Errorf("rate %v, want 0 to 1", e.Rate)
		}
	case Crash, Revive, Pressure, Relieve, CloseChannel, Reopen:
		return node(e.Node)
	default:
		return fmt.Errorf("unknown kind %v", e.Kind)
	}
	return nil
}
