package sim

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// maxViolations bounds Result.Violations; Result.ViolationCount counts
// them all.
const maxViolations = 32

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
	from, to int    // 0-based
	off, n   int    // its entries in the slot's arena
	hoff, hn int    // its reports in the slot's heard arena
	seq, inc uint64 // the heartbeat's number, and its sender's boot
}

type node struct {
	num int // 1-based
	id  policy.NodeID
	rn  *replica.Node
	ch  *replica.Channel
	c   *rolefsm.Coordinator
	rng *rand.Rand

	alive, pressure, closed bool
	phase                   int    // heartbeat phase, in steps
	boots                   uint64 // processes started, numbered as replica/udp numbers them

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
	lost     []int           // n×n: the step a batch on the link was last lost (dropped by loss or a cut); -1: never
	got      []int           // n×n: the step a batch last arrived on the link; -1: never
	gap      []int           // n×n: the step a batch arrived on the link after one was lost; -1: never
	ledAt    int             // the last step a live node was Leader
	linkDown []bool          // n×n
	side     []bool          // partition side of each node
	parted   bool

	ring    [][]msg            // batches by delivery step modulo len(ring)
	arena   [][]replica.Entry  // their entries, by the same slot
	heard   [][]replica.Report // their reports, by the same slot
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
		lost:      make([]int, n*n),
		got:       make([]int, n*n),
		gap:       make([]int, n*n),
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
	for i := range r.lost {
		r.lost[i], r.got[i], r.gap[i] = -1, -1, -1
	}
	r.ring = make([][]msg, r.maxDelay+1)
	r.arena = make([][]replica.Entry, r.maxDelay+1)
	r.heard = make([][]replica.Report, r.maxDelay+1)
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
		Evidence:  r.cfg.Evidence,
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
	n.boots++
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
	if _, err := rolefsm.Apply(rec.From, rec.To, rec.Signal); err != nil || rec.From != n.role || rec.Generation != n.seq+1 {
		r.violate(InvValid, n.num, "committed %v as #%d after %v #%d (apply: %v)", rec.Transition, rec.Generation, n.role, n.seq, err)
	}
	n.role, n.seq = rec.To, rec.Generation
	res := &r.res
	res.Transitions++
	res.bySignal[rec.Signal]++
	switch rec.Signal {
	case rolefsm.MissedHeartbeats:
		if rec.ColdStart {
			res.ColdStarts++
		} else {
			res.Thrash++
		}
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
			r.lost[m.from*r.n+m.to] = r.step
			continue
		}
		from := policy.NodeID(m.from + 1)
		r.refused(to, "rtt", to.rn.ObserveRTT(from, r.rtt[m.from*r.n+m.to]))
		b := replica.Batch{From: from, Seq: m.seq, Incarnation: m.inc, Entries: r.arena[slot][m.off : m.off+m.n], Heard: r.heard[slot][m.hoff : m.hoff+m.hn]}
		r.delivered++
		k := m.from*r.n + m.to
		if r.lost[k] > r.got[k] {
			r.gap[k] = r.step // the receiver sees the gap in the numbers now
		}
		r.got[k] = r.step
		if err := to.rn.Step(r.ctx, now, b); err != nil {
			r.violate(InvNoRejection, to.num, "step: %v", err)
		}
	}
	r.ring[slot] = r.ring[slot][:0]
	r.arena[slot] = r.arena[slot][:0]
	r.heard[slot] = r.heard[slot][:0]
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
		r.lost[from*r.n+to] = r.step
		return
	}
	k := from*r.n + to
	if l := r.loss[k]; l > 0 && r.rng.Float64() < l {
		r.lost[k] = r.step
		return
	}
	rtt := r.rtt[k]
	oneWay := rtt/2 + time.Duration(r.rng.Int64N(int64(rtt/2)+1))
	slot := (r.step + 1 + int(oneWay/r.cfg.Step)) % len(r.ring)
	r.ring[slot] = append(r.ring[slot], msg{from: from, to: to, off: len(r.arena[slot]), n: len(m.Batch.Entries),
		hoff: len(r.heard[slot]), hn: len(m.Batch.Heard), seq: m.Batch.Seq, inc: r.nodes[from].boots})
	r.arena[slot] = append(r.arena[slot], m.Batch.Entries...)
	r.heard[slot] = append(r.heard[slot], m.Batch.Heard...)
}

func (r *run) connected(i, j int) bool {
	return (!r.parted || r.side[i] == r.side[j]) && !r.linkDown[i*r.n+j]
}

// FNV-1a over 64-bit words.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)
