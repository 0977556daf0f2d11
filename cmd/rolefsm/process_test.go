package main

// Tests on real processes: rolefsm node started as child processes of
// the test binary (see asCommand), talking UDP on loopback. They wait
// for the cluster with bounded polls of GET /status (a real network and
// real processes: there is no virtual clock to advance), with generous
// deadlines that are bounds, not timing claims. Every process started
// is stopped by the test's cleanup.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// patience bounds every wait on the processes.
const patience = 60 * time.Second

// proc is one node process.
type proc struct {
	id     replica.NodeID
	cmd    *exec.Cmd
	http   string // its /status and /metrics address
	stderr string // the file its audit log goes to
	done   chan struct{}
	err    error // Wait's, once done is closed
}

// cluster runs node processes, each with its own key, on fixed UDP
// ports.
type cluster struct {
	t        *testing.T
	dir      string
	keys     map[replica.NodeID]udp.PrivateKey
	keyFiles map[replica.NodeID]string
	udp      map[replica.NodeID]string   // each node's UDP address
	peers    map[replica.NodeID]string   // each node's -peers, if not all the others
	args     []string                    // more flags for every node
	nodeArgs map[replica.NodeID][]string // more flags for one node
	env      map[replica.NodeID][]string // more environment for one node
	procs    map[replica.NodeID]*proc
	starts   int
	insecure bool // -insecure: no keys
}

func newCluster(t *testing.T, ids []replica.NodeID, args ...string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := &cluster{t: t, dir: t.TempDir(), udp: map[replica.NodeID]string{}, peers: map[replica.NodeID]string{},
		keys: map[replica.NodeID]udp.PrivateKey{}, keyFiles: map[replica.NodeID]string{},
		args: args, nodeArgs: map[replica.NodeID][]string{}, env: map[replica.NodeID][]string{}, procs: map[replica.NodeID]*proc{}}
	for _, id := range ids {
		c.udp[id] = freeUDPAddr(t)
		c.addKey(id)
	}
	t.Cleanup(c.stopAll)
	return c
}

// freeUDPAddr returns a loopback address with a UDP port free a moment
// ago (the node binds it next).
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer conn.Close()
	return conn.LocalAddr().String()
}

// addKey makes node id a key, and its key file.
func (c *cluster) addKey(id replica.NodeID) {
	k, err := udp.GenerateKey()
	require.NoError(c.t, err)
	c.keys[id] = k
	c.keyFiles[id] = filepath.Join(c.dir, fmt.Sprintf("node%d.key", id))
	_ = os.Remove(c.keyFiles[id])
	require.NoError(c.t, udp.WritePrivateKey(c.keyFiles[id], k))
}

// peer is one -peers item: node id at addr, with its public key.
func (c *cluster) peer(id replica.NodeID, addr string) string {
	if c.insecure {
		return fmt.Sprintf("%d=%s", id, addr)
	}
	return fmt.Sprintf("%d=%s@%s", id, addr, c.keys[id].Public())
}

// peersOf is the -peers flag of node id: every other node of the
// cluster, unless set in c.peers.
func (c *cluster) peersOf(id replica.NodeID) string {
	if p, ok := c.peers[id]; ok {
		return p
	}
	var ps []string
	for other, addr := range c.udp {
		if other != id {
			ps = append(ps, c.peer(other, addr))
		}
	}
	slices.Sort(ps)
	return strings.Join(ps, ",")
}

// start starts node id and waits for its first stdout line.
func (c *cluster) start(id replica.NodeID) {
	t := c.t
	t.Helper()
	c.starts++
	base := filepath.Join(c.dir, fmt.Sprintf("node%d.%d", id, c.starts))
	stdout, err := os.Create(base + ".out")
	require.NoError(t, err)
	defer stdout.Close()
	stderr, err := os.Create(base + ".err")
	require.NoError(t, err)
	defer stderr.Close()
	args := []string{"node", "-id", fmt.Sprint(id), "-listen", c.udp[id], "-peers", c.peersOf(id), "-http", "127.0.0.1:0"}
	if c.insecure {
		args = append(args, "-insecure")
	} else {
		args = append(args, "-key-file", c.keyFiles[id])
	}
	args = append(args, c.args...)
	args = append(args, c.nodeArgs[id]...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), asCommand+"=1"), c.env[id]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(t, cmd.Start())
	p := &proc{id: id, cmd: cmd, stderr: base + ".err", done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	c.procs[id] = p

	c.await(fmt.Sprintf("node %d's first line", id), func() bool {
		line, _ := firstLine(base + ".out")
		_, addr, ok := strings.Cut(line, " http=")
		p.http = addr
		select {
		case <-p.done:
			t.Fatalf("node %d exited: %v\n%s", id, p.err, tail(p.stderr))
		default:
		}
		return ok
	})
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

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// signal sends sig to node id and waits for it to exit.
func (c *cluster) signal(id replica.NodeID, sig syscall.Signal) *proc {
	c.t.Helper()
	p := c.procs[id]
	require.NoError(c.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(patience):
		c.t.Fatalf("node %d did not exit on %v", id, sig)
	}
	delete(c.procs, id)
	return p
}

func (c *cluster) stopAll() {
	for _, p := range c.procs {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// status reads GET /status of node id.
func (c *cluster) status(id replica.NodeID) (nodeStatus, error) {
	var st nodeStatus
	body, err := c.get(id, "/status")
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	return st, err
}

func (c *cluster) get(id replica.NodeID, path string) ([]byte, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + c.procs[id].http + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// await polls cond every 20 ms until it holds, failing the test after
// patience.
func (c *cluster) await(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range c.procs {
				fmt.Fprintf(&logs, "--- node %d:\n%s\n", p.id, tail(p.stderr))
			}
			c.t.Fatalf("no %s within %v\n%s", what, patience, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // a poll of real processes
	}
}

// leaders returns, when the nodes agree, each channel's leader: exactly
// one of them reports Leader and every other follows it as a Replica.
func (c *cluster) leaders(ids ...replica.NodeID) (map[string]replica.NodeID, bool) {
	out := map[string]replica.NodeID{}
	var sts []nodeStatus
	for _, id := range ids {
		st, err := c.status(id)
		if err != nil {
			return nil, false
		}
		sts = append(sts, st)
	}
	for i, ch := range sts[0].Channels {
		var leader replica.NodeID
		for _, st := range sts {
			if len(st.Channels) != len(sts[0].Channels) {
				return nil, false
			}
			if s := st.Channels[i]; s.Role == "Leader" {
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

// settle waits until ids agree on a leader per channel, and returns
// them.
func (c *cluster) settle(ids ...replica.NodeID) map[string]replica.NodeID {
	c.t.Helper()
	var got map[string]replica.NodeID
	c.await(fmt.Sprintf("one leader per channel among nodes %v", ids), func() bool {
		var ok bool
		got, ok = c.leaders(ids...)
		return ok
	})
	return got
}

// mostLeading is the node that leads the most channels (the lowest id
// of a tie).
func mostLeading(leaders map[string]replica.NodeID) replica.NodeID {
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

// metrics reads every sample of one scrape of node id's /metrics, by
// series (name and labels); nil if the scrape failed.
func (c *cluster) metrics(id replica.NodeID) map[string]float64 {
	body, err := c.get(id, "/metrics")
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			var v float64
			if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}

// metric reads one sample's value from node id's /metrics, or -1.
func (c *cluster) metric(id replica.NodeID, series string) float64 {
	if v, ok := c.metrics(id)[series]; ok {
		return v
	}
	return -1
}

// recorder is a UDP relay that keeps a copy of what it forwards: it
// stands between two nodes, as an attacker on the path would.
type recorder struct {
	conn *net.UDPConn
	to   *net.UDPAddr
	mu   sync.Mutex
	seen [][]byte
	done chan struct{}
}

func newRecorder(t *testing.T, to string) *recorder {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	dst, err := net.ResolveUDPAddr("udp", to)
	require.NoError(t, err)
	r := &recorder{conn: conn, to: dst, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 1<<16)
		var client *net.UDPAddr // the last sender that is not dst: answers go back to it
		for {
			n, src, err := conn.ReadFromUDP(buf)
			if err != nil {
				return // closed
			}
			if src.String() == dst.String() {
				if client != nil {
					_, _ = conn.WriteToUDP(buf[:n], client)
				}
				continue
			}
			client = src
			_, _ = conn.WriteToUDP(buf[:n], dst)
			r.mu.Lock()
			r.seen = append(r.seen, slices.Clone(buf[:n]))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-r.done })
	return r
}

func (r *recorder) captured() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}
