// Package nodeproc runs rolefsm node processes on loopback, for tests
// and benchmarks on real processes: each node's key and key file, its
// UDP address and peers, its process and logs, and reads of its
// /status and /metrics. cmd/rolefsm's process tests and
// bench/failover both run on it; it needs no testing.T, so a benchmark
// command can use it, and returns errors for a test to fail on.
package nodeproc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// Cluster is node processes, each with its own key, on fixed loopback
// UDP ports. Set its fields before Start.
type Cluster struct {
	// Bin is the command to run ("rolefsm", or a test binary that runs
	// as the command when Env says so); Dir holds the key files and
	// the processes' output.
	Bin, Dir string
	// Env is added to every process's environment, NodeEnv to one's.
	Env     []string
	NodeEnv map[replica.NodeID][]string
	// Args are more flags for every node, NodeArgs for one (after
	// Args: a flag given twice takes the last value).
	Args     []string
	NodeArgs map[replica.NodeID][]string
	// UDP is each node's UDP address; Peers a node's -peers, when not
	// all the others.
	UDP   map[replica.NodeID]string
	Peers map[replica.NodeID]string
	// Keys and KeyFiles are each node's private key and its file.
	Keys     map[replica.NodeID]udp.PrivateKey
	KeyFiles map[replica.NodeID]string
	// Insecure runs the nodes -insecure, without keys.
	Insecure bool
	// Procs are the running processes.
	Procs map[replica.NodeID]*Proc
	// Patience bounds each wait (default a minute): a bound, not a
	// timing claim.
	Patience time.Duration

	starts int
	client http.Client
}

// Proc is one node process.
type Proc struct {
	ID   replica.NodeID
	Cmd  *exec.Cmd
	HTTP string // its /status and /metrics address
	// Stdout and Stderr are the files its output goes to (the audit log
	// is on stderr).
	Stdout, Stderr string
	// Done is closed when it has exited, with Err what Wait returned.
	Done chan struct{}
	Err  error
}

// New returns a cluster of nodes ids, each with a free loopback port
// and a new key, running bin with args; Dir is dir.
func New(bin, dir string, ids []replica.NodeID, args ...string) (*Cluster, error) {
	c := &Cluster{Bin: bin, Dir: dir, Args: args, NodeEnv: map[replica.NodeID][]string{},
		NodeArgs: map[replica.NodeID][]string{}, UDP: map[replica.NodeID]string{}, Peers: map[replica.NodeID]string{},
		Keys: map[replica.NodeID]udp.PrivateKey{}, KeyFiles: map[replica.NodeID]string{}, Procs: map[replica.NodeID]*Proc{},
		Patience: time.Minute}
	c.client.Timeout = 5 * time.Second
	for _, id := range ids {
		addr, err := FreeUDPAddr()
		if err != nil {
			return nil, err
		}
		c.UDP[id] = addr
		if err := c.AddKey(id); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// FreeUDPAddr returns a loopback address with a UDP port free a moment
// ago (a node binds it next).
func FreeUDPAddr() (string, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.LocalAddr().String(), nil
}

// AddKey gives node id a new key, and writes its key file (mode 0600).
func (c *Cluster) AddKey(id replica.NodeID) error {
	k, err := udp.GenerateKey()
	if err != nil {
		return err
	}
	c.Keys[id] = k
	c.KeyFiles[id] = filepath.Join(c.Dir, fmt.Sprintf("node%d.key", id))
	_ = os.Remove(c.KeyFiles[id])
	return udp.WritePrivateKey(c.KeyFiles[id], k)
}

// Peer is one -peers item: node id at addr, with its public key.
func (c *Cluster) Peer(id replica.NodeID, addr string) string {
	if c.Insecure {
		return fmt.Sprintf("%d=%s", id, addr)
	}
	return fmt.Sprintf("%d=%s@%s", id, addr, c.Keys[id].Public())
}

// PeersOf is node id's -peers: every other node, unless Peers says.
func (c *Cluster) PeersOf(id replica.NodeID) string {
	if p, ok := c.Peers[id]; ok {
		return p
	}
	var ps []string
	for other, addr := range c.UDP {
		if other != id {
			ps = append(ps, c.Peer(other, addr))
		}
	}
	slices.Sort(ps)
	return strings.Join(ps, ",")
}

// Start starts node id and waits for its first stdout line, which
// names its HTTP address.
func (c *Cluster) Start(id replica.NodeID) (*Proc, error) {
	c.starts++
	base := filepath.Join(c.Dir, fmt.Sprintf("node%d.%d", id, c.starts))
	stdout, err := os.Create(base + ".out")
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(base + ".err")
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	args := []string{"node", "-id", fmt.Sprint(id), "-listen", c.UDP[id], "-peers", c.PeersOf(id), "-http", "127.0.0.1:0"}
	if c.Insecure {
		args = append(args, "-insecure")
	} else {
		args = append(args, "-key-file", c.KeyFiles[id])
	}
	args = append(append(args, c.Args...), c.NodeArgs[id]...)
	cmd := exec.Command(c.Bin, args...)
	cmd.Env = append(append(os.Environ(), c.Env...), c.NodeEnv[id]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{ID: id, Cmd: cmd, Stdout: base + ".out", Stderr: base + ".err", Done: make(chan struct{})}
	go func() { p.Err = cmd.Wait(); close(p.Done) }()
	c.Procs[id] = p
	err = c.Await(fmt.Sprintf("node %d's first line", id), 20*time.Millisecond, func() (bool, error) {
		line, _ := firstLine(p.Stdout)
		_, addr, ok := strings.Cut(line, " http=")
		p.HTTP = addr
		select {
		case <-p.Done:
			why := p.Err
			if why == nil {
				why = errors.New("exit status 0")
			}
			return false, fmt.Errorf("node %d exited before its first line: %w\n%s", id, why, Tail(p.Stderr))
		default:
		}
		return ok, nil
	})
	return p, err
}

func firstLine(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// Tail is the end of a log file, for failure messages.
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Signal sends sig to node id, waits for it to exit, and forgets it.
func (c *Cluster) Signal(id replica.NodeID, sig syscall.Signal) (*Proc, error) {
	p := c.Procs[id]
	if p == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotRunning, id)
	}
	if err := p.Cmd.Process.Signal(sig); err != nil {
		return nil, err
	}
	select {
	case <-p.Done:
	case <-time.After(c.Patience):
		return nil, fmt.Errorf("nodeproc: node %d did not exit on %v", id, sig)
	}
	delete(c.Procs, id)
	return p, nil
}

// StopAll kills every process and waits for it.
func (c *Cluster) StopAll() {
	for id, p := range c.Procs {
		_ = p.Cmd.Process.Kill()
		<-p.Done
		delete(c.Procs, id)
	}
}

// Get reads path from node id's HTTP server.
func (c *Cluster) Get(id replica.NodeID, path string) ([]byte, error) {
	p := c.Procs[id]
	if p == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotRunning, id)
	}
	resp, err := c.client.Get("http://" + p.HTTP + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Status is what a reader needs of GET /status: the command's own type
// (cmd/rolefsm's nodeStatus) has more.
type Status struct {
	ID       replica.NodeID `json:"id"`
	Channels []struct {
		Name       string         `json:"name"`
		Role       string         `json:"role"`
		Generation uint64         `json:"generation"`
		Leader     replica.NodeID `json:"leader"`
	} `json:"channels"`
}

// Status reads node id's GET /status into st (a *Status, or a richer
// type of the caller's).
func (c *Cluster) Status(id replica.NodeID, st any) error {
	body, err := c.Get(id, "/status")
	if err != nil {
		return err
	}
	return json.Unmarshal(body, st)
}

// Leaders returns, when nodes ids agree, each channel's leader: exactly
// one of them reports Leader and every other follows it as a Replica.
func (c *Cluster) Leaders(ids ...replica.NodeID) (map[string]replica.NodeID, bool) {
	var sts []Status
	for _, id := range ids {
		var st Status
		if err := c.Status(id, &st); err != nil {
			return nil, false
		}
		sts = append(sts, st)
	}
	out := map[string]replica.NodeID{}
	for i, ch := range sts[0].Channels {
		var leader replica.NodeID
		for _, st := range sts {
			if len(st.Channels) != len(sts[0].Channels) {
				return nil, false
			}
			if st.Channels[i].Role == "Leader" {
				if leader != 0 {
					return nil, false
				}
				leader = st.ID
			}
		}
		if leader == 0 {
			return nil, false
		}
		for _, st := range sts {
			if s := st.Channels[i]; s.Leader != leader || (st.ID != leader && s.Role != "Replica") {
				return nil, false
			}
		}
		out[ch.Name] = leader
	}
	return out, true
}

// MostLeading is the node that leads the most channels (the lowest id
// of a tie).
func MostLeading(leaders map[string]replica.NodeID) replica.NodeID {
	count := map[replica.NodeID]int{}
	var best replica.NodeID
	for _, id := range leaders {
		count[id]++
	}
	for id, n := range count {
		if n > count[best] || (n == count[best] && id < best) {
			best = id
		}
	}
	return best
}

// Metrics reads every sample of one scrape of node id's /metrics, by
// series (name and labels).
func (c *Cluster) Metrics(id replica.NodeID) (map[string]float64, error) {
	body, err := c.Get(id, "/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out, nil
}

// Await polls cond every poll until it holds, returns an error, or
// Patience passes (then the error names what and holds every node's
// log tail).
func (c *Cluster) Await(what string, poll time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(c.Patience)
	for {
		ok, err := cond()
		switch {
		case err != nil:
			return err
		case ok:
			return nil
		case time.Now().After(deadline):
			var logs strings.Builder
			for _, p := range c.Procs {
				fmt.Fprintf(&logs, "--- node %d:\n%s\n", p.ID, Tail(p.Stderr))
			}
			return fmt.Errorf("nodeproc: no %s within %v\n%s", what, c.Patience, logs.String())
		}
		time.Sleep(poll) // a poll of real processes
	}
}

// ErrNotRunning is returned for a node that has no process.
var ErrNotRunning = errors.New("nodeproc: node not running")
