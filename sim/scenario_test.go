package sim

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// ScenarioSuite runs scripted faults, without random ones, under each
// election policy, and checks the invariants and the expected end state.
type ScenarioSuite struct {
	suite.Suite
	policy policy.Policy
}

func TestScenariosHighestTail(t *testing.T) { suite.Run(t, &ScenarioSuite{policy: policy.HighestTail}) }
func TestScenariosUpstream(t *testing.T)    { suite.Run(t, &ScenarioSuite{policy: policy.Upstream}) }

// run simulates script on 5 nodes for 400 steps and requires every
// invariant to hold.
func (s *ScenarioSuite) run(script ...Event) *Result {
	s.T().Helper()
	return s.runWith(replica.DefaultEvidence, script...)
}

func (s *ScenarioSuite) runWith(ev replica.Evidence, script ...Event) *Result {
	s.T().Helper()
	res, err := Check(Config{Seed: 42, Policy: s.policy, Evidence: ev, Script: script}, nil)
	s.Require().NoError(err)
	s.Require().Empty(res.Violations)
	s.Require().True(res.OK())
	return res
}

// leaders returns the live Leaders at the end, 1-based.
func leaders(res *Result) []policy.NodeID {
	var ls []policy.NodeID
	for i, n := range res.Final {
		if n.Alive && n.Role == rolefsm.Leader {
			ls = append(ls, policy.NodeID(i+1))
		}
	}
	return ls
}

// requireOneLeader checks the end state of a healed cluster: one
// Leader, and every other live, non-Idle node a Replica following it.
func (s *ScenarioSuite) requireOneLeader(res *Result) policy.NodeID {
	s.T().Helper()
	ls := leaders(res)
	s.Require().Len(ls, 1, "final states: %+v", res.Final)
	for i, n := range res.Final {
		if n.Alive && n.Role != rolefsm.Idle && policy.NodeID(i+1) != ls[0] {
			s.Equal(rolefsm.Replica, n.Role, "n%d", i+1)
			s.Equal(ls[0], n.Follows, "n%d follows the leader", i+1)
		}
	}
	s.GreaterOrEqual(res.Converged, 0)
	return ls[0]
}

// initialLeader runs the quiet cluster long enough to elect, and returns
// its leader: the scenarios below fault it.
func (s *ScenarioSuite) initialLeader() policy.NodeID {
	res, err := Run(Config{Seed: 42, Policy: s.policy, Steps: 100}, nil)
	s.Require().NoError(err)
	ls := leaders(res)
	s.Require().Len(ls, 1)
	return ls[0]
}

func (s *ScenarioSuite) TestQuietClusterElectsOnce() {
	res := s.run()
	s.requireOneLeader(res)
	s.Equal(5, res.ColdStarts, "each node stands once, at the first timeout (a cold start)")
	s.Zero(res.Thrash, "and never again")
	if s.policy == policy.HighestTail {
		s.Equal(1, res.LeaderChanges, "every node agrees on the winner")
		s.Zero(res.DualLeaderSteps)
	} else {
		// Upstream: every Candidate elects itself; the tiebreak then
		// deposes all but one.
		s.Equal(5, res.LeaderChanges)
		s.Equal(4, res.Concessions)
		s.Positive(res.DualLeaderSteps)
	}
}

func (s *ScenarioSuite) TestLeaderCrash() {
	old := s.initialLeader()
	res := s.run(Event{Step: 100, Kind: Crash, Node: old})
	leader := s.requireOneLeader(res)
	s.NotEqual(old, leader)
	s.False(res.Final[old-1].Alive)
	s.Positive(res.Count(rolefsm.MissedHeartbeats))
	// Failover within the timeout plus an election round.
	s.Less(res.Converged, res.Settle)
}

func (s *ScenarioSuite) TestLeaderCrashAndRevive() {
	old := s.initialLeader()
	res := s.run(Event{Step: 100, Kind: Crash, Node: old}, Event{Step: 150, Kind: Revive, Node: old})
	leader := s.requireOneLeader(res)
	s.NotEqual(old, leader, "the revived node rejoins as a Replica")
	s.Equal(rolefsm.Replica, res.Final[old-1].Role)
}

func (s *ScenarioSuite) TestSymmetricPartitionAndHeal() {
	old := s.initialLeader()
	minority := []policy.NodeID{old, old%5 + 1}
	res := s.run(Event{Step: 100, Kind: Cut, Side: minority}, Event{Step: 250, Kind: Heal})
	// Upstream has no quorum: each side keeps or elects its own leader.
	s.Equal(uint8(2), res.Leaders[249], "one leader on each side before the heal")
	s.requireOneLeader(res)
	s.Positive(res.Count(rolefsm.PeerLeaderObserved), "the heal deposes one of the two")
	s.Less(res.Converged, res.Settle)
}

func (s *ScenarioSuite) TestAsymmetricLoss() {
	old := s.initialLeader()
	victim := old%5 + 1
	// Every heartbeat from the leader to victim is lost; the other way
	// works.
	res := s.run(Event{Step: 100, Kind: Lossy, Node: old, Peer: victim, Rate: 1},
		Event{Step: 300, Kind: Lossy, Node: old, Peer: victim})
	s.requireOneLeader(res)
	thrash := res.Final[victim-1].Stats.ElectionThrash
	if s.policy == policy.Upstream {
		// It elects itself; the leader that beats it in the tiebreak
		// never reaches it, so both claim office until the link heals.
		s.Greater(res.DualLeaderSteps, 100)
		s.Equal(uint64(1), thrash, "once, when the loss began")
		s.Equal(uint64(1), res.Final[victim-1].Stats.ColdStarts, "its first election at start is a cold start, not thrash")
	} else {
		// The others report hearing the leader: cut off alone, the
		// victim waits as a Replica, and never stands.
		s.Zero(res.DualLeaderSteps)
		s.Equal(1, res.LeaderChanges)
		s.Zero(thrash, "the replica set still hears the leader")
		// On its own silence alone it elects a peer with a longer
		// tail, which never stands: no second leader, only churn,
		// every timeout.
		res = s.runWith(replica.OwnSilence, Event{Step: 100, Kind: Lossy, Node: old, Peer: victim, Rate: 1},
			Event{Step: 300, Kind: Lossy, Node: old, Peer: victim})
		s.Zero(res.DualLeaderSteps)
		s.GreaterOrEqual(res.Final[victim-1].Stats.ElectionThrash, uint64(6), "the victim stands every 1.5 s of the 10 s loss")
	}
}

func (s *ScenarioSuite) TestFlappingLink() {
	old := s.initialLeader()
	peer := old%5 + 1
	var script []Event
	for step := 100; step < 300; step += 20 {
		script = append(script, Event{Step: step, Kind: LinkDown, Node: old, Peer: peer},
			Event{Step: step + 10, Kind: LinkUp, Node: old, Peer: peer})
	}
	res := s.run(script...)
	s.requireOneLeader(res)
	s.Equal(rolefsm.Replica, res.Final[peer-1].Role)
}

func (s *ScenarioSuite) TestDiskPressureOnTheLeader() {
	old := s.initialLeader()
	res := s.run(Event{Step: 100, Kind: Pressure, Node: old}, Event{Step: 200, Kind: Relieve, Node: old})
	s.Equal(1, res.Count(rolefsm.LeaderDiskPressureWithdraw))
	s.Zero(res.Count(rolefsm.ChannelClose), "disk pressure is not reported as a close")
	leader := s.requireOneLeader(res)
	s.NotEqual(old, leader)
	s.Equal(rolefsm.Replica, res.Final[old-1].Role, "it rejoins once relieved")
}

func (s *ScenarioSuite) TestDiskPressureOnACandidate() {
	// Every node stands at step 30 and elects at 31: pressure at the
	// start of step 31 catches n1 a Candidate.
	res := s.run(Event{Step: 31, Kind: Pressure, Node: 1})
	s.Equal(1, res.Count(rolefsm.CandidateDiskPressureWithdraw))
	s.requireOneLeader(res)
	s.Equal(rolefsm.Idle, res.Final[0].Role)
}

func (s *ScenarioSuite) TestCloseOfAllNodes() {
	var script []Event
	for n := policy.NodeID(1); n <= 5; n++ {
		script = append(script, Event{Step: 200, Kind: CloseChannel, Node: n})
	}
	res := s.run(script...)
	s.Equal(5, res.Count(rolefsm.ChannelClose))
	for i, n := range res.Final {
		s.Equal(rolefsm.Idle, n.Role, "n%d", i+1)
	}
	s.Empty(leaders(res))
	s.Zero(res.Leaders[399])
	// Closes are not thrash: only the first election stood anyone, and
	// that is each node's cold start (the simulator counts them apart
	// too).
	var thrash, cold uint64
	for _, n := range res.Final {
		thrash += n.Stats.ElectionThrash
		cold += n.Stats.ColdStarts
	}
	s.Zero(thrash)
	s.Equal(uint64(5), cold)
	s.Zero(res.Thrash)
	s.Equal(5, res.ColdStarts)
}

func TestScenarioScriptsAreChecked(t *testing.T) {
	_, err := Run(Config{Script: []Event{{Step: 5, Kind: Crash, Node: 6}}}, nil)
	require.ErrorIs(t, err, ErrBadConfig)
}
