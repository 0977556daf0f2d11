package sim

// What a run found: its Result, its violations, and how they print.

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// Violation is one broken invariant.
type Violation struct {
	Invariant string
	Step      int
	At        time.Duration // virtual time of the step
	Node      policy.NodeID // 0 for the whole cluster
	Detail    string
}

// String formats the violation as one line.
func (v Violation) String() string {
	who := "cluster"
	if v.Node > 0 {
		who = "n" + strconv.FormatUint(uint64(v.Node), 10)
	}
	return fmt.Sprintf("%s at %s (step %d, %s): %s", v.Invariant, fmtTime(v.At), v.Step, who, v.Detail)
}

// Result is what one run did.
type Result struct {
	Config Config // normalised: defaults filled in

	Transitions   int // committed transitions
	Elections     int // Candidate → Leader or Replica
	LeaderChanges int // entries into Leader
	Thrash        int // MissedHeartbeats transitions, but cold starts
	ColdStarts    int // MissedHeartbeats transitions of a first election (no leader since the node started)
	Concessions   int // PeerLeaderObserved transitions
	Appends       int // entries appended by leaders
	Fenced        int // writes refused because the lease no longer held
	StaleAppends  int // writes that landed after their leader lost office

	// DualLeaderSteps and LeaderlessSteps count the steps in which some
	// connected component had more than one Leader, or no Leader but a
	// live non-Idle node.
	DualLeaderSteps int
	LeaderlessSteps int
	// Leaders holds, for each step, the number of live Leaders.
	Leaders []uint8

	// Calm is the step from which no fault is in force; Settle the step
	// from which InvSingleLeader is checked: Calm plus the heartbeat
	// timeout plus one election round (the election step, a heartbeat
	// interval and the longest message delay, for the winner's first
	// heartbeat to reach everyone). Converged is the first step from
	// which every component had exactly one Leader to the end of the
	// run, or -1.
	Calm, Settle, Converged int

	Violations     []Violation
	ViolationCount int
	// ByInvariant counts the violations of each invariant by name; it
	// is nil when there are none.
	ByInvariant map[string]int

	// Final is each node's state at the end of the run, node 1 first.
	Final []NodeState

	// Digest is a hash of the trace: every fault and every committed
	// transition with its step and node.
	Digest uint64

	bySignal [11]int // by Signal, 1 to 10
}

// NodeState is one node at the end of a run.
type NodeState struct {
	Alive   bool
	Role    rolefsm.Role
	Tail    uint64
	Follows policy.NodeID // the node it follows as leader, or 0
	// Stats are its coordinator's counters (of its latest process, if
	// it was revived).
	Stats rolefsm.Stats
}

// Count returns how many transitions committed under sig.
func (r *Result) Count(sig rolefsm.Signal) int {
	if !sig.Valid() {
		return 0
	}
	return r.bySignal[sig]
}

// OK reports whether the run broke no invariant.
func (r *Result) OK() bool { return r.ViolationCount == 0 }

// TimeOf returns the virtual time of step.
func (r *Result) TimeOf(step int) time.Duration { return time.Duration(step) * r.Config.Step }

func (r *Result) add(v Violation) {
	r.ViolationCount++
	if r.ByInvariant == nil {
		r.ByInvariant = make(map[string]int)
	}
	r.ByInvariant[v.Invariant]++
	if len(r.Violations) < maxViolations {
		r.Violations = append(r.Violations, v)
	}
}

func (r *run) printf(format string, args ...any) {
	if r.twErr == nil {
		_, r.twErr = fmt.Fprintf(r.trace, format, args...)
	}
}

func fmtTime(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}
