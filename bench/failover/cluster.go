package main

// The process harness: rolefsm node processes on loopback, their keys,
// their /status and /metrics, their CPU.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type status struct {
	ID       int `json:"id"`
	Channels []struct {
		Name   string `json:"name"`
		Role   string `json:"role"`
		Leader int    `json:"leader"`
	} `json:"channels"`
}

type node struct {
	id        int
	udp, http string
	cmd       *exec.Cmd
	done      chan error
}

type cluster struct {
	bin, dir, keys string // keys: the directory of the nodes' key files
	args           []string
	poll           time.Duration
	rng            *rand.Rand
	nodes          []*node // by id-1; nil when stopped
	client         http.Client
}

func (c *cluster) start(n int) {
	c.client.Timeout = 5 * time.Second
	c.nodes = make([]*node, n)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freeUDPAddr()
	}
	for i := range c.nodes {
		c.nodes[i] = &node{id: i + 1, udp: addrs[i]}
		c.launch(c.nodes[i], addrs)
	}
	c.settle(c.live())
}

// nodeKey returns node id's private key file in dir, and its public
// key: made with rolefsm keygen on first use, read back with rolefsm
// pubkey after.
func nodeKey(bin, dir string, id int) (file, pub string) {
	file = filepath.Join(dir, fmt.Sprintf("node%d.key", id))
	var out []byte
	var err error
	if _, statErr := os.Stat(file); statErr == nil {
		out, err = exec.Command(bin, "pubkey", "-key-file", file).Output()
	} else {
		out, err = exec.Command(bin, "keygen", "-out", file).Output()
	}
	check(err)
	return file, strings.TrimSpace(string(out))
}

func freeUDPAddr() string {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	check(err)
	defer conn.Close()
	return conn.LocalAddr().String()
}

// launch starts n's process and waits for its first line.
func (c *cluster) launch(n *node, addrs []string) {
	var peers []string
	for i, a := range addrs {
		if i+1 != n.id {
			_, pub := nodeKey(c.bin, c.keys, i+1)
			peers = append(peers, fmt.Sprintf("%d=%s@%s", i+1, a, pub))
		}
	}
	keyDir, _ := nodeKey(c.bin, c.keys, n.id)
	args := append([]string{"node", "-id", strconv.Itoa(n.id), "-listen", n.udp, "-peers", strings.Join(peers, ","),
		"-key-file", keyDir, "-http", "127.0.0.1:0"}, c.args...)
	n.cmd = exec.Command(c.bin, args...)
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("node%d.log", n.id)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	check(err)
	defer logf.Close()
	n.cmd.Stderr = logf
	out, err := n.cmd.StdoutPipe()
	check(err)
	check(n.cmd.Start())
	startedMu.Lock()
	started = append(started, n.cmd)
	startedMu.Unlock()
	line, err := bufio.NewReader(out).ReadString('\n')
	check(err)
	go func() { _, _ = io.Copy(io.Discard, out) }()
	_, addr, ok := strings.Cut(strings.TrimSpace(line), " http=")
	if !ok {
		check(fmt.Errorf("node %d: first line %q", n.id, line))
	}
	n.http = addr
	cmd, done := n.cmd, make(chan error, 1)
	n.done = done
	go func() { done <- cmd.Wait() }()
}

func (c *cluster) live() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.cmd != nil {
			out = append(out, n)
		}
	}
	return out
}

func (c *cluster) status(n *node) (status, error) {
	var st status
	resp, err := c.client.Get("http://" + n.http + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, errors.New(resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// observe polls nodes once: whether they agree on one leader per
// channel (and who leads the most), and whether some channel has two
// nodes reporting Leader.
func (c *cluster) observe(nodes []*node) (agreed bool, most int, dual bool) {
	var sts []status
	for _, n := range nodes {
		st, err := c.status(n)
		if err != nil {
			return false, 0, false
		}
		sts = append(sts, st)
	}
	agreed = true
	leads := map[int]int{}
	for i := range sts[0].Channels {
		leader, leaders := 0, 0
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
func (c *cluster) settle(nodes []*node) int {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if ok, most, _ := c.observe(nodes); ok {
			return most
		}
		time.Sleep(c.poll)
	}
	check(errors.New("the nodes did not agree within 2 minutes"))
	return 0
}

func (c *cluster) stop() {
	for _, n := range c.live() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-n.done; err != nil {
			check(fmt.Errorf("node %d: exit after SIGTERM: %w", n.id, err))
		}
		n.cmd = nil
	}
}

// metrics reads the un-labelled samples of a node's /metrics.
func (c *cluster) metrics(n *node) map[string]float64 {
	resp, err := c.client.Get("http://" + n.http + "/metrics")
	check(err)
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// cpuTime reads a process's user and system CPU from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// Fields after the command name (in parentheses, which may hold
	// spaces): state is field 3, utime 14, stime 15.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	check(errors.Join(err1, err2))
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}
