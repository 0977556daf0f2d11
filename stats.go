package rolefsm

// What a coordinator counts: Counts and Stats.

// Stats is a snapshot of a coordinator's counters.
type Stats struct {
	// Name is the channel name given by WithName.
	Name string `json:"name"`
	// Role is the current role.
	Role Role `json:"role"`
	// Generation counts committed transitions; it equals the sum of
	// Transitions.
	Generation uint64 `json:"generation"`
	// Transitions counts committed transitions per triple. The
	// idempotent close (Idle → Idle) is never counted.
	Transitions map[Transition]uint64 `json:"transitions"`
	// LeaderChanges counts entries into Leader (upstream's
	// leader_changes_total).
	LeaderChanges uint64 `json:"leader_changes"`
	// ElectionThrash counts committed MissedHeartbeats transitions but
	// those marked ColdStart: a channel that lost the leader it had
	// (upstream's election_thrash_total counts both).
	ElectionThrash uint64 `json:"election_thrash"`
	// ColdStarts counts committed MissedHeartbeats transitions marked
	// ColdStart: the first election of a channel that has had no leader
	// since it opened, as every node's is at a cluster's first start.
	// ElectionThrash + ColdStarts is every committed MissedHeartbeats.
	ColdStarts uint64 `json:"cold_starts"`
	// InvalidPairs counts attempts rejected with an *InvalidPairError.
	InvalidPairs uint64 `json:"invalid_pairs"`
	// SignalMismatches counts attempts rejected with a
	// *SignalMismatchError.
	SignalMismatches uint64 `json:"signal_mismatches"`
	// ObserverPanics counts panics recovered from observers and from
	// the audit logger's handler.
	ObserverPanics uint64 `json:"observer_panics"`
}

// Counts is a snapshot of a coordinator's counters that Counts reads
// without allocating: what a metrics scrape of many coordinators needs.
// Stats holds the same figures, with the transitions in a map.
type Counts struct {
	Role       Role   `json:"role"`
	Generation uint64 `json:"generation"`
	// Transitions counts committed transitions per triple of Counted(),
	// in that order.
	Transitions [NumCounted]uint64 `json:"transitions"`
	// LeaderChanges, ElectionThrash, ColdStarts, InvalidPairs,
	// SignalMismatches and ObserverPanics are as in Stats.
	LeaderChanges    uint64 `json:"leader_changes"`
	ElectionThrash   uint64 `json:"election_thrash"`
	ColdStarts       uint64 `json:"cold_starts"`
	InvalidPairs     uint64 `json:"invalid_pairs"`
	SignalMismatches uint64 `json:"signal_mismatches"`
	ObserverPanics   uint64 `json:"observer_panics"`
}

// Counts returns the counters without allocating. The commit counters
// (Role, Generation, Transitions, LeaderChanges, ElectionThrash,
// ColdStarts) are
// read together under the commit lock, so they agree with one another.
func (c *Coordinator) Counts() Counts {
	var n Counts
	c.mu.Lock()
	st := c.state.Load()
	n.Transitions = c.committed
	n.ColdStarts = c.coldStarts
	c.mu.Unlock()
	n.Role, n.Generation = Role(st), st>>8
	for i, k := range n.Transitions {
		t := &matrix.counted[i]
		if t.To == Leader {
			n.LeaderChanges += k
		}
		if t.Signal == MissedHeartbeats {
			n.ElectionThrash += k
		}
	}
	n.ElectionThrash -= n.ColdStarts
	n.InvalidPairs = c.invalidPairs.Load()
	n.SignalMismatches = c.signalMismatches.Load()
	if o := c.obs.Load(); o != nil {
		n.ObserverPanics = o.panics.Load()
	}
	return n
}

// Stats returns a snapshot of the counters, as Counts does, with the
// transitions that have committed at least once in a map. It
// allocates; Counts does not.
func (c *Coordinator) Stats() Stats {
	n := c.Counts()
	s := Stats{
		Name:             c.name,
		Role:             n.Role,
		Generation:       n.Generation,
		Transitions:      make(map[Transition]uint64),
		LeaderChanges:    n.LeaderChanges,
		ElectionThrash:   n.ElectionThrash,
		ColdStarts:       n.ColdStarts,
		InvalidPairs:     n.InvalidPairs,
		SignalMismatches: n.SignalMismatches,
		ObserverPanics:   n.ObserverPanics,
	}
	for i, k := range n.Transitions {
		if k > 0 {
			s.Transitions[matrix.counted[i]] = k
		}
	}
	return s
}
