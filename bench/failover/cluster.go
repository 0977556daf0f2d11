package main

// The bench's view of a cluster: rolefsm/rolefsmtest/nodeproc's process
// harness (the one cmd/rolefsm's tests run on), and what the bench
// measures with it: agreement, dual leaders, CPU.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"syscall"
	"time"

	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmtest/nodeproc"
)

type cluster struct {
	bin, dir string
	args     []string
	poll     time.Duration
	rng      *rand.Rand
	nc       *nodeproc.Cluster
}

// running is the cluster whose processes check kills if the bench
// fails (a deferred call would not run on os.Exit).
var running *nodeproc.Cluster

// start starts n nodes with new keys and waits until they agree.
func (c *cluster) start(n int) {
	var ids []replica.NodeID
	for id := replica.NodeID(1); int(id) <= n; id++ {
		ids = append(ids, id)
	}
	nc, err := nodeproc.New(c.bin, c.dir, ids, c.args...)
	check(err)
	nc.Patience = 2 * time.Minute
	c.nc, running = nc, nc
	for _, id := range ids {
		_, err := nc.Start(id)
		check(err)
	}
	c.settle(c.live())
}

// live returns the running nodes, by id.
func (c *cluster) live() []replica.NodeID {
	var out []replica.NodeID
	for id := replica.NodeID(1); int(id) <= len(c.nc.UDP); id++ {
		if c.nc.Procs[id] != nil {
			out = append(out, id)
		}
	}
	return out
}

// observe polls nodes once: whether they agree on one leader per
// channel (and who leads the most), and whether some channel has two
// nodes reporting Leader.
func (c *cluster) observe(nodes []replica.NodeID) (agreed bool, most replica.NodeID, dual bool) {
	var sts []nodeproc.Status
	for _, id := range nodes {
		var st nodeproc.Status
		if err := c.nc.Status(id, &st); err != nil {
			return false, 0, false
		}
		sts = append(sts, st)
	}
	agreed = true
	leads := map[replica.NodeID]int{}
	for i := range sts[0].Channels {
		var leader replica.NodeID
		leaders := 0
		for _, st := range sts {
			if st.Channels[i].Role == "Leader" {
				leader = st.ID
				leaders++
			}
		}
		dual = dual || leaders > 1
		if leaders != 1 {
			agreed = false
			continue
		}
		leads[leader]++
		for _, st := range sts {
			if s := st.Channels[i]; s.Leader != leader || (st.ID != leader && s.Role != "Replica") {
				agreed = false
			}
		}
	}
	for id, k := range leads {
		if k > leads[most] || (k == leads[most] && id < most) {
			most = id
		}
	}
	return agreed, most, dual
}

// settle polls until nodes agree, and returns who leads the most
// channels.
func (c *cluster) settle(nodes []replica.NodeID) replica.NodeID {
	var most replica.NodeID
	check(c.nc.Await("agreement on one leader per channel", c.poll, func() (bool, error) {
		ok, m, _ := c.observe(nodes)
		most = m
		return ok, nil
	}))
	return most
}

// post sends an empty POST to node id's path, which must answer 200.
func (c *cluster) post(id replica.NodeID, path string) {
	resp, err := http.Post("http://"+c.nc.Procs[id].HTTP+path, "text/plain", nil)
	check(err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		check(fmt.Errorf("POST %s on node %d: %s: %s", path, id, resp.Status, body))
	}
}

// stop stops every node with SIGTERM, which must exit 0.
func (c *cluster) stop() {
	for _, id := range c.live() {
		p, err := c.nc.Signal(id, syscall.SIGTERM)
		check(err)
		if p.Err != nil {
			check(fmt.Errorf("node %d: exit after SIGTERM: %w", id, p.Err))
		}
	}
	running = nil
}

// metrics reads a node's /metrics.
func (c *cluster) metrics(id replica.NodeID) map[string]float64 {
	m, err := c.nc.Metrics(id)
	check(err)
	return m
}

// cpuTime reads a process's user and system CPU from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	d, err := nodeproc.CPUTime(pid)
	check(err)
	return d
}
