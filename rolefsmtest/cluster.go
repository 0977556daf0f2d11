package rolefsmtest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// TestingT is what a Cluster needs of a test: testing.T and testing.B
// have it.
type TestingT interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Cluster is replica nodes 1 to n on a fake clock, every one holding
// every channel, wired to each other by a replica.MemNetwork (whose
// cuts are the partitions). Nothing runs unless the
// test advances the clock: Advance ticks every running node every Tick
// and delivers what each sends at once, so a run is the same every
// time. Stop, Start, Partition and Heal change the cluster between
// advances. It is not safe for concurrent use.
type Cluster struct {
	t        TestingT
	channels []string
	rule     policy.Heartbeat
	now      time.Time
	nodes    []*member              // by id-1
	side     map[replica.NodeID]int // the partition's sides, for Leaders; the cuts are net's
	net      *replica.MemNetwork
	opts     []rolefsm.Option
	observe  func(replica.NodeID, rolefsm.Record)
}

// Tick is the step of a Cluster's clock.
const Tick = 10 * time.Millisecond

type member struct {
	id          replica.NodeID
	node        *replica.Node
	tr          *replica.MemTransport
	up          bool
	incarnation uint64
}

// ClusterOption configures NewCluster.
type ClusterOption func(*Cluster)

// WithHeartbeat sets the heartbeat interval and miss threshold (default
// 100 ms and 3).
func WithHeartbeat(interval time.Duration, miss int) ClusterOption {
	return func(c *Cluster) {
		hb, err := policy.NewHeartbeat(interval, miss)
		if err != nil {
			c.t.Fatalf("rolefsmtest: %v", err)
		}
		c.rule = hb
	}
}

// WithCoordinatorOptions adds options to every coordinator the cluster
// opens (a Recorder's Option, say).
func WithCoordinatorOptions(opts ...rolefsm.Option) ClusterOption {
	return func(c *Cluster) { c.opts = append(c.opts, opts...) }
}

// WithObserver calls observe with every record of every node's
// coordinators, and the node's id (WithCoordinatorOptions' observers do
// not know which node they are on).
func WithObserver(observe func(node replica.NodeID, r rolefsm.Record)) ClusterOption {
	return func(c *Cluster) { c.observe = observe }
}

// NewCluster returns n running nodes, each holding channels, with
// channel names as coordinator names, at a fake time of 0.
func NewCluster(t TestingT, n int, channels []string, opts ...ClusterOption) *Cluster {
	t.Helper()
	if n < 1 || len(channels) == 0 {
		t.Fatalf("rolefsmtest: NewCluster(%d nodes, %d channels): want at least one of each", n, len(channels))
	}
	hb, _ := policy.NewHeartbeat(100*time.Millisecond, 3)
	c := &Cluster{t: t, channels: slices.Clone(channels), rule: hb, now: time.Unix(0, 0).UTC(), side: map[replica.NodeID]int{},
		net: replica.NewMemNetwork()}
	for _, o := range opts {
		o(c)
	}
	for id := 1; id <= n; id++ {
		c.nodes = append(c.nodes, &member{id: replica.NodeID(id)})
	}
	for id := 1; id <= n; id++ {
		c.Start(replica.NodeID(id))
	}
	return c
}

func (c *Cluster) member(id replica.NodeID) *member {
	c.t.Helper()
	if id < 1 || int(id) > len(c.nodes) {
		c.t.Fatalf("rolefsmtest: no node %d (the cluster has 1 to %d)", id, len(c.nodes))
	}
	return c.nodes[id-1]
}

// Now returns the cluster's fake time.
func (c *Cluster) Now() time.Time { return c.now }

// Node returns node id's replica.Node (its latest, after a restart).
func (c *Cluster) Node(id replica.NodeID) *replica.Node { return c.member(id).node }

// Coordinator returns the coordinator of channel on node id.
func (c *Cluster) Coordinator(id replica.NodeID, channel string) *rolefsm.Coordinator {
	c.t.Helper()
	co := c.member(id).node.Coordinator(channel)
	if co == nil {
		c.t.Fatalf("rolefsmtest: node %d holds no channel %q", id, channel)
	}
	return co
}

// Stop crashes node id: it stops ticking, and nothing reaches it or
// leaves it.
func (c *Cluster) Stop(id replica.NodeID) {
	m := c.member(id)
	if m.up {
		_ = m.tr.Close()
	}
	m.up = false
}

// Start starts node id afresh, as a restarted process: a new Node that
// opens every channel and waits for a leader. Starting a running node
// restarts it.
func (c *Cluster) Start(id replica.NodeID) {
	c.t.Helper()
	m := c.member(id)
	node, err := replica.NewNode(replica.Config{ID: id, Heartbeat: c.rule, Policy: policy.HighestTail}, c.now)
	if err != nil {
		c.t.Fatalf("rolefsmtest: node %d: %v", id, err)
	}
	all := make([]replica.NodeID, len(c.nodes))
	for i := range all {
		all[i] = replica.NodeID(i + 1)
	}
	for _, ch := range c.channels {
		opts := append([]rolefsm.Option{rolefsm.WithClock(c.Now)}, c.opts...) // records carry the fake time
		if c.observe != nil {
			opts = append(opts, rolefsm.WithObserver(func(_ context.Context, r rolefsm.Record) { c.observe(id, r) }))
		}
		if err := node.Open(context.Background(), c.now, replica.ChannelConfig{Name: ch, Replicas: all, Options: opts}); err != nil {
			c.t.Fatalf("rolefsmtest: node %d: %v", id, err)
		}
	}
	if m.up {
		_ = m.tr.Close()
	}
	if m.tr, err = c.net.Join(id, 0); err != nil {
		c.t.Fatalf("rolefsmtest: node %d: %v", id, err)
	}
	m.node, m.up = node, true
	m.incarnation++
}

// send hands m's message to the network and delivers what arrives at
// once: a cut link, or a stopped node, drops it.
func (c *Cluster) send(ctx context.Context, m *member, msg replica.Message) {
	b := msg.Batch
	b.Incarnation = m.incarnation
	_ = m.tr.Send(ctx, msg.To, b)
	to := c.nodes[msg.To-1]
	for to.up {
		select {
		case in := <-to.tr.Inbox():
			_ = to.node.Step(ctx, c.now, in.Batch) // what a node refuses is its own affair
			continue
		default:
		}
		break
	}
}

// Leave shuts node id down gracefully (replica.Node.Leave): its
// leaders relinquish, every channel closes, its goodbyes reach the
// peers it can reach at once, and it stops.
func (c *Cluster) Leave(id replica.NodeID) {
	c.t.Helper()
	m := c.member(id)
	if !m.up {
		c.t.Fatalf("rolefsmtest: node %d is not running", id)
	}
	ctx := context.Background()
	for _, msg := range m.node.Leave(ctx, c.now) {
		c.send(ctx, m, msg)
	}
	c.Stop(id)
}

// Partition cuts the cluster in two: the nodes given on one side, the
// others on the other. It replaces any partition in force.
func (c *Cluster) Partition(side ...replica.NodeID) {
	c.Heal()
	for _, id := range side {
		c.member(id)
		c.side[id] = 1
	}
	c.net.Partition(side...)
}

// Heal ends the partition.
func (c *Cluster) Heal() {
	c.side = map[replica.NodeID]int{}
	c.net.Heal()
}

// Advance moves the fake clock forward by d, in steps of Tick.
func (c *Cluster) Advance(d time.Duration) {
	for end := c.now.Add(d); c.now.Before(end); {
		c.step()
	}
}

func (c *Cluster) step() {
	c.now = c.now.Add(Tick)
	ctx := context.Background()
	for _, m := range c.nodes {
		if !m.up {
			continue
		}
		for _, msg := range m.node.Tick(ctx, c.now) {
			c.send(ctx, m, msg)
		}
	}
}

// Leaders returns, for every channel on which each group of nodes that
// can reach one another agrees, its leader: exactly one Leader in the
// group, which every other node of the group follows as a Replica. A
// channel on which some group does not agree is missing.
func (c *Cluster) Leaders() map[string][]replica.NodeID {
	out := map[string][]replica.NodeID{}
	for _, ch := range c.channels {
		var leaders []replica.NodeID
		agreed := true
		for _, group := range c.groups() {
			leader := replica.NodeID(0)
			for _, m := range group {
				if st, _ := m.node.Status(ch); st.Role == rolefsm.Leader {
					if leader != 0 {
						agreed = false
					}
					leader = m.id
				}
			}
			for _, m := range group {
				st, _ := m.node.Status(ch)
				if leader == 0 || st.Leader != leader || (m.id != leader && st.Role != rolefsm.Replica) {
					agreed = false
				}
			}
			leaders = append(leaders, leader)
		}
		if agreed {
			sort.Slice(leaders, func(i, j int) bool { return leaders[i] < leaders[j] })
			out[ch] = leaders
		}
	}
	return out
}

// groups returns the running nodes by side of the partition.
func (c *Cluster) groups() [][]*member {
	by := map[int][]*member{}
	for _, m := range c.nodes {
		if m.up {
			by[c.side[m.id]] = append(by[c.side[m.id]], m)
		}
	}
	var out [][]*member
	for _, side := range []int{0, 1} {
		if len(by[side]) > 0 {
			out = append(out, by[side])
		}
	}
	return out
}

// WaitForLeaders advances the clock until every group of nodes that can
// reach one another agrees on one leader per channel, and returns the
// leaders (one per group, by id). It fails the test if that takes
// longer than within of fake time, saying where each node stands.
func (c *Cluster) WaitForLeaders(within time.Duration) map[string][]replica.NodeID {
	c.t.Helper()
	end := c.now.Add(within)
	for {
		if l := c.Leaders(); len(l) == len(c.channels) {
			return l
		}
		if !c.now.Before(end) {
			c.t.Fatalf("rolefsmtest: no leader agreed on every channel within %v of fake time:\n%s", within, c.describe())
			return nil
		}
		c.step()
	}
}

// describe says where every node stands on every channel.
func (c *Cluster) describe() string {
	var b strings.Builder
	for _, m := range c.nodes {
		if !m.up {
			fmt.Fprintf(&b, "  node %d: stopped\n", m.id)
			continue
		}
		fmt.Fprintf(&b, "  node %d (side %d):", m.id, c.side[m.id])
		for _, ch := range c.channels {
			st, _ := m.node.Status(ch)
			fmt.Fprintf(&b, " %s %v following %d;", ch, st.Role, st.Leader)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
