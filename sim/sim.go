package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// The invariants, by the names violations carry.
const (
	// InvValid: every committed transition is in the matrix and starts
	// from the role the node was in (the observers' records chain).
	InvValid = "valid-transition"
	// InvNoRejection: no Transition the simulator asks for is rejected;
	// a rejection means the simulator picked the wrong signal.
	InvNoRejection = "no-rejected-transition"
	// InvSingleLeader: from Result.Settle on, each connected component
	// holding a live non-Idle node has exactly one Leader.
	InvSingleLeader = "single-leader"
	// InvCandidate: no node stays Candidate past one election step.
	InvCandidate = "no-stuck-candidate"
	// InvReplica: no live Replica goes longer than the heartbeat timeout
	// plus one step without hearing the leader it follows.
	InvReplica = "no-stuck-replica"
	// InvFencing: no append lands after its leader lost leadership
	// locally (Result.StaleAppends is 0).
	InvFencing = "fenced-appends"
	// InvReproducible: running the same Config again gives the same
	// trace (checked by Check and Sweep).
	InvReproducible = "reproducible"
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

// maxViolations bounds Result.Violations; Result.ViolationCount counts
// them all.
const maxViolations = 32

// Result is what one run did.
type Result struct {
	Config Config // normalised: defaults filled in

	Transitions   int // committed transitions
	Elections     int // Candidate → Leader or Replica
	LeaderChanges int // entries into Leader
	Thrash        int // MissedHeartbeats transitions
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

const (
	minRTT     = 2 * time.Millisecond
	maxRTT     = 100 * time.Millisecond
	catchUp    = 4   // entries a Replica copies from its leader per step
	appendRate = 0.5 // chance a Leader issues a write in a step
	minFault   = 10  // steps a random fault lasts, at least
	spanFault  = 70  // ... plus up to this many
)

// channelName is the one channel every simulated node holds.
const channelName = "ch"

// msg is a heartbeat batch in flight: its entries are in the ring
// slot's arena.
type msg struct {
	from, to int // 0-based
	off, n   int
}

type node struct {
	num int // 1-based
	id  policy.NodeID
	rn  *replica.Node
	ch  *replica.Channel
	c   *rolefsm.Coordinator
	rng *rand.Rand

	alive, pressure, closed bool
	phase                   int // heartbeat phase, in steps

	tail        uint64 // on the node's disk: it outlives a crash
	candidateAt int    // step it became Candidate
	reported    int    // step a stuck Replica was last reported

	writing   bool   // a write is in flight
	writeTerm uint64 // the term it was issued in

	// What the simulator saw committed, from the observer's records.
	role   rolefsm.Role
	seq    uint64
	leader bool
	term   uint64 // elections won
}

type ending struct {
	step int
	ev   Event
}

// hooks re-create upstream defects, so that tests (and only tests: see
// defects_test.go) can show each invariant catching its own.
type hooks struct {
	unfenced     bool                        // append without checking the lease
	skipTick     func(r *run, n *node) bool  // leave n's Tick out this step
	withdraw     func(r *run, n *node) error // withdraw n under disk pressure instead of its replica
	quietLeaders bool                        // leaders never append
	strictSettle bool                        // Settle as issue 6 wrote it: timeout plus one election step
}

type run struct {
	cfg   Config
	hooks hooks
	n     int
	nodes []node
	rng   *rand.Rand // the network and the faults
	ctx   context.Context
	epoch time.Time
	step  int
	res   Result
	trace io.Writer
	twErr error

	nowStep int // the step nowT is the time of
	nowT    time.Time

	delivered int // heartbeat batches handed to a node's Step

	hbSteps, timeoutSteps, maxDelay int

	rtt      []time.Duration // n×n, symmetric
	loss     []float64       // n×n, from×to
	linkDown []bool          // n×n
	side     []bool          // partition side of each node
	parted   bool

	ring    [][]msg           // batches by delivery step modulo len(ring)
	arena   [][]replica.Entry // their entries, by the same slot
	endings []ending
	script  int // next scripted event
	faults  []Faults

	linksDown int // links cut by LinkDown

	// Scratch for the components: of each node, leaders and activity
	// in each, the search's queue and marks.
	comp      []int
	leadersIn []int
	activeIn  []bool
	queue     []int
	mark      []uint64
	epochMark uint64
}

// Run simulates cfg and returns what happened. When trace is not nil
// it receives the timeline: one line per fault and per committed
// transition. Run returns an error only for a bad Config (matching
// ErrBadConfig) or a failed trace write; broken invariants are in the
// Result.
func Run(cfg Config, trace io.Writer) (*Result, error) { return runWith(cfg, trace, hooks{}) }

func runWith(cfg Config, trace io.Writer, h hooks) (*Result, error) {
	return runProgress(cfg, trace, h, nil)
}

// runProgress is runWith that calls progress(step) every hundredth of
// the run (and at its end).
func runProgress(cfg Config, trace io.Writer, h hooks, progress func(step int)) (*Result, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	r := newRun(cfg, trace, h)
	if err := r.start(); err != nil {
		return nil, err
	}
	every := max(cfg.Steps/100, 1)
	for r.step = 0; r.step < cfg.Steps; r.step++ {
		r.tick()
		if progress != nil && (r.step+1)%every == 0 {
			progress(r.step + 1)
		}
	}
	r.finish()
	if r.twErr != nil {
		return nil, fmt.Errorf("sim: writing the trace: %w", r.twErr)
	}
	return &r.res, nil
}

// Check runs cfg twice, the second time without a trace, and adds an
// InvReproducible violation if the two runs differ.
func Check(cfg Config, trace io.Writer) (*Result, error) { return checkWith(cfg, trace, hooks{}) }

// CheckProgress is Check that reports its progress: progress(done,
// total) is called every hundredth of each run, total being both runs'
// steps. A long run (many nodes, many steps) can say it is alive.
func CheckProgress(cfg Config, trace io.Writer, progress func(done, total int)) (*Result, error) {
	return checkProgress(cfg, trace, hooks{}, progress)
}

func checkWith(cfg Config, trace io.Writer, h hooks) (*Result, error) {
	return checkProgress(cfg, trace, h, nil)
}

func checkProgress(cfg Config, trace io.Writer, h hooks, progress func(done, total int)) (*Result, error) {
	var onFirst, onSecond func(int)
	if progress != nil {
		n, err := cfg.normalized()
		if err != nil {
			return nil, err
		}
		onFirst = func(step int) { progress(step, 2*n.Steps) }
		onSecond = func(step int) { progress(n.Steps+step, 2*n.Steps) }
	}
	first, err := runProgress(cfg, trace, h, onFirst)
	if err != nil {
		return nil, err
	}
	second, err := runProgress(cfg, nil, h, onSecond)
	if err != nil {
		return nil, err
	}
	if d := differs(first, second); d != "" {
		first.add(Violation{Invariant: InvReproducible, Step: cfg.Steps, At: first.TimeOf(first.Config.Steps),
			Detail: "a second run of seed " + strconv.FormatUint(cfg.Seed, 10) + " differs: " + d})
	}
	return first, nil
}

func differs(a, b *Result) string {
	switch {
	case a.Digest != b.Digest:
		return fmt.Sprintf("trace digest %016x then %016x", a.Digest, b.Digest)
	case a.Appends != b.Appends || a.DualLeaderSteps != b.DualLeaderSteps || a.LeaderlessSteps != b.LeaderlessSteps:
		return "counters differ"
	case string(a.Leaders) != string(b.Leaders):
		return "leader counts differ"
	}
	return ""
}

func newRun(cfg Config, trace io.Writer, h hooks) *run {
	n := cfg.Nodes
	r := &run{
		cfg:       cfg,
		hooks:     h,
		n:         n,
		nodes:     make([]node, n),
		rng:       rand.New(rand.NewPCG(cfg.Seed, 0x5157_6e65_7477_6f72)),
		ctx:       context.Background(),
		epoch:     time.Unix(0, 0).UTC(),
		trace:     trace,
		rtt:       make([]time.Duration, n*n),
		loss:      make([]float64, n*n),
		linkDown:  make([]bool, n*n),
		side:      make([]bool, n),
		comp:      make([]int, n),
		leadersIn: make([]int, n),
		activeIn:  make([]bool, n),
		queue:     make([]int, 0, n),
		mark:      make([]uint64, n),
		epochMark: 1,
	}
	r.nowStep = -1
	r.res.Config = cfg
	r.res.Leaders = make([]uint8, cfg.Steps)
	r.res.Converged = -1
	r.res.Digest = fnvOffset

	r.hbSteps = int(ceilDiv(cfg.Heartbeat.Interval(), cfg.Step))
	r.timeoutSteps = int(ceilDiv(cfg.Heartbeat.Timeout(), cfg.Step))
	r.maxDelay = 1 + int(maxRTT/cfg.Step)
	r.ring = make([][]msg, r.maxDelay+1)
	r.arena = make([][]replica.Entry, r.maxDelay+1)
	for i := range r.ring {
		r.ring[i] = make([]msg, 0, 2*n*n)
		r.arena[i] = make([]replica.Entry, 0, 2*n*n)
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			d := minRTT + time.Duration(r.rng.Int64N(int64(maxRTT-minRTT)))
			r.rtt[i*n+j], r.rtt[j*n+i] = d, d
		}
	}
	for f := Partition; f <= Loss; f <<= 1 {
		if cfg.Faults&f != 0 {
			r.faults = append(r.faults, f)
		}
	}
	calm := 0
	if cfg.Faults != 0 {
		calm = cfg.FaultsUntil
	}
	if k := len(cfg.Script); k > 0 && cfg.Script[k-1].Step+1 > calm {
		calm = cfg.Script[k-1].Step + 1
	}
	r.res.Calm = calm
	r.res.Settle = calm + r.timeoutSteps + 1 + r.hbSteps + r.maxDelay
	if h.strictSettle {
		r.res.Settle = calm + r.timeoutSteps + 1
	}
	return r
}

func ceilDiv(a, b time.Duration) time.Duration { return (a + b - 1) / b }

// now is the virtual time of the current step.
func (r *run) now() time.Time {
	if r.nowStep != r.step {
		r.nowStep, r.nowT = r.step, r.epoch.Add(time.Duration(r.step)*r.cfg.Step)
	}
	return r.nowT
}

// start creates the nodes, each a fresh process that the capability
// filter selects at step 0.
func (r *run) start() error {
	for i := range r.nodes {
		n := &r.nodes[i]
		n.num, n.id = i+1, policy.NodeID(i+1)
		n.rng = rand.New(rand.NewPCG(r.cfg.Seed, uint64(i+1)))
		n.phase = n.rng.IntN(r.hbSteps)
		if err := r.boot(n); err != nil {
			return err
		}
	}
	return nil
}

// boot gives n a new process: a replica.Node holding the channel with
// the tail on its disk, which joins unless it is under disk pressure or
// closed.
func (r *run) boot(n *node) error {
	// The first heartbeat falls on the node's phase of the cluster-wide
	// heartbeat steps, whenever the process starts.
	wait := (r.hbSteps - (r.step+n.phase)%r.hbSteps) % r.hbSteps
	rn, err := replica.NewNode(replica.Config{
		ID:        n.id,
		Heartbeat: r.cfg.Heartbeat,
		Policy:    r.cfg.Policy,
		Phase:     time.Duration(wait) * r.cfg.Step,
	}, r.now())
	if err != nil {
		return err
	}
	replicas := make([]policy.NodeID, r.n)
	for i := range replicas {
		replicas[i] = policy.NodeID(i + 1)
	}
	n.rn, n.alive, n.writing = rn, true, false
	n.role, n.seq, n.leader = rolefsm.Idle, 0, false
	err = rn.Open(r.ctx, r.now(), replica.ChannelConfig{
		Name:         channelName,
		Replicas:     replicas,
		Tail:         n.tail,
		DiskPressure: n.pressure,
		Closed:       n.closed,
		Options: []rolefsm.Option{
			rolefsm.WithName("n" + strconv.Itoa(n.num)),
			rolefsm.WithObserver(func(_ context.Context, rec rolefsm.Record) { r.observe(n, rec) }),
		},
	})
	if err != nil {
		return err
	}
	n.ch = rn.Channel(channelName)
	n.c = n.ch.Coordinator()
	return nil
}

// refused records an input the replica refused: the simulator only
// gives it inputs a correct node accepts. Rejected transitions are
// recorded by observe, from the coordinator's record.
func (r *run) refused(n *node, what string, err error) {
	if err == nil || errors.Is(err, rolefsm.ErrInvalidPair) || errors.Is(err, rolefsm.ErrSignalMismatch) {
		return
	}
	r.violate(InvNoRejection, n.num, "%s: %v", what, err)
}

// observe receives every record of n's coordinator, on the goroutine
// that made the transition.
func (r *run) observe(n *node, rec rolefsm.Record) {
	if rec.Err != nil {
		r.violate(InvNoRejection, n.num, "%v", rec.Err)
		return
	}
	if _, err := rolefsm.Apply(rec.From, rec.To, rec.Signal); err != nil || rec.From != n.role || rec.Seq != n.seq+1 {
		r.violate(InvValid, n.num, "committed %v as #%d after %v #%d (apply: %v)", rec.Transition, rec.Seq, n.role, n.seq, err)
	}
	n.role, n.seq = rec.To, rec.Seq
	res := &r.res
	res.Transitions++
	res.bySignal[rec.Signal]++
	switch rec.Signal {
	case rolefsm.MissedHeartbeats:
		res.Thrash++
	case rolefsm.ElectionWon, rolefsm.ElectionLost:
		res.Elections++
	case rolefsm.PeerLeaderObserved:
		res.Concessions++
	}
	if rec.To == rolefsm.Candidate {
		n.candidateAt = r.step
	}
	if rec.From == rolefsm.Leader {
		n.leader = false
	}
	if rec.To == rolefsm.Leader {
		n.leader = true
		n.term++
		res.LeaderChanges++
	}
	r.mix(uint64(r.step), uint64(n.num), uint64(rec.From), uint64(rec.To)<<8|uint64(rec.Signal))
	if r.trace != nil {
		r.printf("%7s  n%-2d %-9s → %-9s %v\n", fmtTime(r.res.TimeOf(r.step)), n.num, rec.From, rec.To, rec.Signal)
	}
}

// tick runs one step: faults, message delivery, in-flight writes, then
// each node's catch-up, next write and Tick (timers, elections and
// heartbeats), then the invariants.
func (r *run) tick() {
	r.injectFaults()
	r.deliver()
	for i := range r.nodes {
		r.land(&r.nodes[i])
	}
	for i := range r.nodes {
		r.act(&r.nodes[i])
	}
	r.checkStep()
}

func (r *run) deliver() {
	slot := r.step % len(r.ring)
	now := r.now()
	for _, m := range r.ring[slot] {
		to := &r.nodes[m.to]
		if !to.alive || !r.connected(m.from, m.to) {
			continue
		}
		from := policy.NodeID(m.from + 1)
		r.refused(to, "rtt", to.rn.ObserveRTT(from, r.rtt[m.from*r.n+m.to]))
		b := replica.Batch{From: from, Entries: r.arena[slot][m.off : m.off+m.n]}
		r.delivered++
		if err := to.rn.Step(r.ctx, now, b); err != nil {
			r.violate(InvNoRejection, to.num, "step: %v", err)
		}
	}
	r.ring[slot] = r.ring[slot][:0]
	r.arena[slot] = r.arena[slot][:0]
}

// land completes n's write in flight, if the lease still holds.
func (r *run) land(n *node) {
	if !n.writing {
		return
	}
	n.writing = false
	if !r.hooks.unfenced && !n.c.Holds(n.ch.Lease()) {
		r.res.Fenced++
		return
	}
	n.setTail(r, n.tail+1)
	r.res.Appends++
	if !n.leader || n.term != n.writeTerm {
		r.res.StaleAppends++
		r.violate(InvFencing, n.num, "an append of term %d landed after the node left office", n.writeTerm)
	}
}

func (n *node) setTail(r *run, tail uint64) {
	n.tail = tail
	r.refused(n, "tail", n.rn.SetTail(channelName, tail))
}

// act is the application around n's replica: a Replica copies entries
// from its leader, a Leader may issue a write; then the replica's Tick
// runs its timers and elections and hands out its heartbeats.
func (r *run) act(n *node) {
	if !n.alive {
		return
	}
	switch n.c.Role() {
	case rolefsm.Replica:
		if _, tail, claimed := n.ch.Follows(); claimed && n.tail < tail {
			n.setTail(r, min(tail, n.tail+catchUp))
		}
	case rolefsm.Leader:
		if n.rng.Float64() < appendRate && !r.hooks.quietLeaders {
			n.writing, n.writeTerm = true, n.term
		}
	}
	if r.hooks.skipTick != nil && r.hooks.skipTick(r, n) {
		return
	}
	msgs := n.rn.Tick(r.ctx, r.now())
	for i := range msgs {
		r.send(n, &msgs[i])
	}
}

// send puts a heartbeat batch on the network: dropped at once by a
// partition or a cut link (one that forms later drops it on arrival),
// or by a lossy link, otherwise delivered after a one-way delay.
func (r *run) send(n *node, m *replica.Message) {
	from, to := n.num-1, int(m.To)-1
	if !r.connected(from, to) {
		return
	}
	k := from*r.n + to
	if l := r.loss[k]; l > 0 && r.rng.Float64() < l {
		return
	}
	rtt := r.rtt[k]
	oneWay := rtt/2 + time.Duration(r.rng.Int64N(int64(rtt/2)+1))
	slot := (r.step + 1 + int(oneWay/r.cfg.Step)) % len(r.ring)
	r.ring[slot] = append(r.ring[slot], msg{from: from, to: to, off: len(r.arena[slot]), n: len(m.Batch.Entries)})
	r.arena[slot] = append(r.arena[slot], m.Batch.Entries...)
}

func (r *run) connected(i, j int) bool {
	return (!r.parted || r.side[i] == r.side[j]) && !r.linkDown[i*r.n+j]
}

// checkStep checks the per-step invariants and counts leaders, in all
// and in each connected component of the live nodes.
func (r *run) checkStep() {
	r.components()
	for i := range r.leadersIn {
		r.leadersIn[i], r.activeIn[i] = 0, false
	}
	live := 0
	for i := range r.nodes {
		n := &r.nodes[i]
		if !n.alive {
			continue
		}
		switch n.c.Role() {
		case rolefsm.Leader:
			live++
			r.leadersIn[r.comp[i]]++
			r.activeIn[r.comp[i]] = true
		case rolefsm.Candidate:
			r.activeIn[r.comp[i]] = true
			if n.candidateAt < r.step {
				r.violate(InvCandidate, n.num, "Candidate since step %d", n.candidateAt)
			}
		case rolefsm.Replica:
			r.activeIn[r.comp[i]] = true
			contact := max(int(n.ch.Contact().Sub(r.epoch)/r.cfg.Step), n.reported)
			if r.step-contact > r.timeoutSteps+1 {
				r.violate(InvReplica, n.num, "no word from a leader since step %d", contact)
				n.reported = r.step // report it once per timeout
			}
		}
	}
	r.res.Leaders[r.step] = uint8(live)

	dual, leaderless := false, false
	for c := range r.leadersIn {
		if r.leadersIn[c] > 1 {
			dual = true
		} else if r.activeIn[c] && r.leadersIn[c] == 0 {
			leaderless = true
		}
	}
	if dual {
		r.res.DualLeaderSteps++
	}
	if leaderless {
		r.res.LeaderlessSteps++
	}
	switch {
	case dual || leaderless:
		r.res.Converged = -1
		if r.step >= r.res.Settle {
			what := "a component with no Leader"
			if dual {
				what = "a component with more than one Leader"
			}
			r.violate(InvSingleLeader, 0, "%s, %s after faults stopped", what, fmtTime(r.res.TimeOf(r.step-r.res.Calm)))
		}
	case r.res.Converged < 0 && r.step >= r.res.Calm:
		r.res.Converged = r.step
	}
}

// components labels each live node with the lowest index of its
// connected component (nodes that hear each other both ways). With no
// partition and no cut link, every live node is in one.
func (r *run) components() {
	for i := range r.comp {
		r.comp[i] = i
	}
	if !r.parted && r.linksDown == 0 {
		first := -1
		for i := range r.nodes {
			if r.nodes[i].alive {
				if first < 0 {
					first = i
				}
				r.comp[i] = first
			}
		}
		return
	}
	// A breadth-first search from each unlabelled live node.
	queue := r.queue[:0]
	for s := range r.nodes {
		if !r.nodes[s].alive || r.seen(s) {
			continue
		}
		queue = append(queue[:0], s)
		r.mark[s] = r.epochMark
		for head := 0; head < len(queue); head++ {
			i := queue[head]
			r.comp[i] = s
			for j := range r.nodes {
				if r.mark[j] != r.epochMark && r.nodes[j].alive && r.connected(i, j) && r.connected(j, i) {
					r.mark[j] = r.epochMark
					queue = append(queue, j)
				}
			}
		}
	}
	r.queue = queue
	r.epochMark++
}

func (r *run) seen(i int) bool { return r.mark[i] == r.epochMark }

func (r *run) finish() {
	for i := range r.nodes {
		n := &r.nodes[i]
		st := NodeState{Alive: n.alive, Role: n.c.Role(), Tail: n.tail, Stats: n.c.Stats()}
		if st.Role == rolefsm.Replica {
			st.Follows, _, _ = n.ch.Follows()
		}
		r.res.Final = append(r.res.Final, st)
	}
	r.mix(uint64(r.res.Appends), uint64(r.res.Fenced), uint64(r.res.DualLeaderSteps), uint64(r.res.LeaderlessSteps))
}

func (r *run) violate(inv string, node int, format string, args ...any) {
	r.res.add(Violation{Invariant: inv, Step: r.step, At: r.res.TimeOf(r.step), Node: policy.NodeID(node), Detail: fmt.Sprintf(format, args...)})
}

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

// FNV-1a over 64-bit words.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (r *run) mix(words ...uint64) {
	h := r.res.Digest
	for _, w := range words {
		for i := 0; i < 8; i++ {
			h ^= w & 0xff
			h *= fnvPrime
			w >>= 8
		}
	}
	r.res.Digest = h
}

func (r *run) printf(format string, args ...any) {
	if r.twErr == nil {
		_, r.twErr = fmt.Fprintf(r.trace, format, args...)
	}
}

func fmtTime(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}
