// Command etcdside measures rolefsm's elections in etcd (rolefsm node
// -election etcd, one session a node) beside what a user writes by hand
// with etcd's concurrency package (bench/peers/concnode: one session a
// process, one Election per channel), 3 processes a side on one etcd,
// both sides in every round, the order alternating, medians over the
// rounds. bench/etcdside.sh runs it; bench/recorded/etcdside.txt holds
// its output.
//
// Each side is started and waited for until every channel has a leader
// (for the concurrency side, until every node has its key in every
// election), left to warm up, then measured at rest: the CPU of its 3
// processes (% of one core, summed) and their keep-alive requests a
// second. Then, at a random moment within a TTL (so that the kill falls
// anywhere in each side's keep-alive cadence), the node that leads the
// most channels is killed (SIGKILL). The crash failover is the time
// until a live node has taken office on every channel the dead node
// led, by that node's own clock (rolefsm: the audit log's transition to
// Leader; concnode: Campaign's return, GET /led). It has two parts:
//   - kill to revocation: until etcd revokes the dead node's lease (seen
//     as the deletes of its keys on a watch of the driver's own). Both
//     sides renew every TTL/3 rounded up to 500 ms (etcd's client's
//     cadence) and etcd checks for expiry every 500 ms, so this part
//     varies with the kill's phase by up to 1.5 s at TTL 2 s, and is
//     the same for both sides by construction;
//   - revocation to office ("rev+"): what each side's elector adds,
//     where the two designs differ. It is read against the driver's own
//     watch, which may hear of the revocation after a node does, so it
//     can be below zero; the last column is rolefsm's less the
//     concurrency side's, in milliseconds.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rolefsm/rolefsm/bench/peers/internal/measure"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmtest/nodeproc"
)

const members = 3

// probe reads the concurrency nodes' counters and office times: a node
// that hangs fails the run instead of stalling it.
var probe = &http.Client{Timeout: 10 * time.Second}

type config struct {
	rolefsm, concnode string
	endpoints         string
	dir               string
	ttl               time.Duration
	warm, measure     time.Duration
	cli               *clientv3.Client
	run               int // a fresh prefix per run
}

type sample struct {
	cpu       float64       // % of one core, the 3 processes
	keepAlive float64       // keep-alive requests a second, the 3 processes
	revoked   time.Duration // kill to the revocation of its lease, at the driver's watch
	office    time.Duration // kill to a live node in office on every channel the killed node led
}

func main() {
	var cfg config
	flag.StringVar(&cfg.rolefsm, "rolefsm", "", "the rolefsm binary (required)")
	flag.StringVar(&cfg.concnode, "concnode", "", "the concnode binary (required)")
	flag.StringVar(&cfg.endpoints, "etcd", "", "etcd's endpoints (required)")
	ns := flag.String("n", "100,1000", "channels per process, comma-separated, one row each")
	rounds := flag.Int("rounds", 5, "rounds: each runs both sides, the order alternating")
	flag.DurationVar(&cfg.ttl, "ttl", 2*time.Second, "the sessions' TTL (whole seconds)")
	flag.DurationVar(&cfg.warm, "warm", 2*time.Second, "wait this long once every channel has a leader")
	flag.DurationVar(&cfg.measure, "measure", 20*time.Second, "measure at rest for this long")
	flag.Parse()
	if cfg.rolefsm == "" || cfg.concnode == "" || cfg.endpoints == "" || *rounds < 1 || cfg.ttl < time.Second {
		fmt.Fprintln(os.Stderr, "usage: etcdside -rolefsm BIN -concnode BIN -etcd HOST:PORT [-n 100,1000] [-rounds 3]")
		os.Exit(2)
	}
	var counts []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fail(fmt.Errorf("-n: %q is not a count", s))
		}
		counts = append(counts, n)
	}
	dir, err := os.MkdirTemp("", "etcdside")
	check(err)
	defer os.RemoveAll(dir)
	cfg.dir = dir
	cfg.cli, err = clientv3.New(clientv3.Config{Endpoints: strings.Split(cfg.endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	check(err)
	defer cfg.cli.Close()

	fmt.Printf("elections in etcd, side by side: %d processes a side on one etcd, TTL %v; rolefsm node -election etcd against one concurrency.Election per channel\n", members, cfg.ttl)
	fmt.Printf("%d rounds, order alternating, medians; at rest over %v after a %v warm-up (CPU: %% of one core, all %d processes); crash failover: kill to a live node in office on each channel, and its part after the lease's revocation\n\n",
		*rounds, cfg.measure, cfg.warm, members)
	fmt.Printf("%-6s %12s %12s %7s %14s %14s %7s %12s %12s %7s %12s %12s %7s\n", "N", "rolefsm CPU", "conc CPU", "ratio",
		"rolefsm ka/s", "conc ka/s", "ratio", "rolefsm fo", "conc fo", "ratio", "rolefsm rev+", "conc rev+", "diff")
	for _, n := range counts {
		var ours, theirs []sample
		for r := range *rounds {
			if r%2 == 1 {
				theirs = append(theirs, cfg.runConc(n))
				ours = append(ours, cfg.runRolefsm(n))
			} else {
				ours = append(ours, cfg.runRolefsm(n))
				theirs = append(theirs, cfg.runConc(n))
			}
			fmt.Fprintf(os.Stderr, "etcdside: N=%d round %d: rolefsm %+v, concurrency %+v\n", n, r+1, ours[r], theirs[r])
		}
		oc, tc := median(ours, func(s sample) float64 { return s.cpu }), median(theirs, func(s sample) float64 { return s.cpu })
		ok, tk := median(ours, func(s sample) float64 { return s.keepAlive }), median(theirs, func(s sample) float64 { return s.keepAlive })
		of, tf := median(ours, func(s sample) float64 { return s.office.Seconds() }), median(theirs, func(s sample) float64 { return s.office.Seconds() })
		after := func(s sample) float64 { return (s.office - s.revoked).Seconds() * 1000 }
		oa, ta := median(ours, after), median(theirs, after)
		fmt.Printf("%-6d %11.2f%% %11.2f%% %7.2f %14.2f %14.2f %7.2f %11.3fs %11.3fs %7.2f %10.1fms %10.1fms %+5.1fms\n",
			n, oc, tc, oc/tc, ok, tk, ok/tk, of, tf, of/tf, oa, ta, oa-ta)
	}
}

func (cfg *config) prefix(side string) string {
	cfg.run++
	return fmt.Sprintf("/bench/etcdside/%s%d", side, cfg.run)
}

func (cfg *config) runRolefsm(n int) sample {
	prefix := cfg.prefix("r")
	ids := []replica.NodeID{1, 2, 3}
	c, err := nodeproc.New(cfg.rolefsm, cfg.dir, ids, "-channels-n", strconv.Itoa(n), "-heartbeat", "500ms",
		"-election", "etcd", "-etcd", cfg.endpoints, "-etcd-ttl", cfg.ttl.String(), "-etcd-prefix", prefix)
	check(err)
	defer c.StopAll()
	pids := map[replica.NodeID]int{}
	logs := map[string]string{} // node → its audit log
	for _, id := range ids {
		p, err := c.Start(id)
		check(err)
		pids[id] = p.Cmd.Process.Pid
		logs[strconv.Itoa(int(id))] = p.Stderr
	}
	check(c.Await("a leader on every channel", 20*time.Millisecond, func() (bool, error) {
		leaders, ok := c.Leaders(ids...)
		return ok && len(leaders) == n, nil
	}))
	keepAlives := func() float64 {
		var sum float64
		for _, id := range ids {
			m, err := c.Metrics(id)
			check(err)
			sum += m[`rolefsm_etcd_requests_total{kind="keepalive"}`]
		}
		return sum
	}
	var s sample
	s.cpu, s.keepAlive = cfg.atRest(pidList(pids), keepAlives)
	s.revoked, s.office = cfg.crash(prefix, pids, func(victim string, since time.Time) map[string]time.Time {
		out := map[string]time.Time{}
		for node, path := range logs {
			if node != victim {
				leadersSince(path, since, out)
			}
		}
		return out
	})
	return s
}

// leadersSince adds to out, for each channel the audit log at path
// shows taking office (a committed transition to Leader; a rejected one
// is logged with "to" too) after since, the first such time.
func leadersSince(path string, since time.Time, out map[string]time.Time) {
	f, err := os.Open(path)
	check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Time          time.Time
			Msg, Name, To string
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "role transition" || line.To != "Leader" || !line.Time.After(since) {
			continue
		}
		if t, ok := out[line.Name]; !ok || line.Time.Before(t) {
			out[line.Name] = line.Time
		}
	}
	check(sc.Err())
}

func (cfg *config) runConc(n int) sample {
	prefix := cfg.prefix("c")
	pids := map[replica.NodeID]int{}
	addrs := map[replica.NodeID]string{}
	var cmds []*exec.Cmd
	defer func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	for id := replica.NodeID(1); id <= members; id++ {
		out := filepath.Join(cfg.dir, fmt.Sprintf("conc%d.out", id))
		f, err := os.Create(out)
		check(err)
		cmd := exec.Command(cfg.concnode, "-id", fmt.Sprint(id), "-endpoints", cfg.endpoints, "-channels", strconv.Itoa(n),
			"-ttl", strconv.Itoa(int(cfg.ttl/time.Second)), "-prefix", prefix)
		cmd.Stdout, cmd.Stderr = f, f
		check(cmd.Start())
		check(f.Close())
		cmds = append(cmds, cmd)
		pids[id] = cmd.Process.Pid
		addrs[id] = awaitReady(out)
	}
	// Every node has its key in every election: the campaigns are made.
	awaitEtcd(fmt.Sprintf("%d keys in each of %d elections", members, n), func() bool {
		keys := cfg.keys(prefix)
		if len(keys) != n {
			return false
		}
		for _, ks := range keys {
			if len(ks) != members {
				return false
			}
		}
		return true
	})
	keepAlives := func() float64 {
		var sum float64
		for _, addr := range addrs {
			resp, err := probe.Get("http://" + addr + "/requests")
			check(err)
			var m map[string]float64
			check(json.NewDecoder(resp.Body).Decode(&m))
			check(resp.Body.Close())
			sum += m["/etcdserverpb.Lease/LeaseKeepAlive"]
		}
		return sum
	}
	var s sample
	s.cpu, s.keepAlive = cfg.atRest(pidList(pids), keepAlives)
	s.revoked, s.office = cfg.crash(prefix, pids, func(victim string, since time.Time) map[string]time.Time {
		out := map[string]time.Time{}
		for id, addr := range addrs {
			if strconv.Itoa(int(id)) == victim {
				continue
			}
			resp, err := probe.Get("http://" + addr + "/led")
			check(err)
			var m map[string]int64
			check(json.NewDecoder(resp.Body).Decode(&m))
			check(resp.Body.Close())
			for ch, ns := range m {
				if t := time.Unix(0, ns); t.After(since) {
					out[ch] = t
				}
			}
		}
		return out
	})
	return s
}

// atRest returns the processes' CPU and keep-alives a second over the
// measurement, after the warm-up.
func (cfg *config) atRest(pids []int, keepAlives func() float64) (cpu, perSec float64) {
	time.Sleep(cfg.warm)
	// The probes stay out of the CPU window: reading a node's /metrics
	// at 1,000 channels costs it about 27 ms (12,000 series), which over
	// 20 s would count as 0.4% of a core for the 3 nodes.
	k0, tk0 := keepAlives(), time.Now()
	c0, t0 := cpuTimes(pids), time.Now()
	time.Sleep(cfg.measure)
	c1, elapsed := cpuTimes(pids), time.Since(t0)
	k1, kElapsed := keepAlives(), time.Since(tk0)
	return 100 * float64(c1-c0) / float64(elapsed), (k1 - k0) / kElapsed.Seconds()
}

// key is one election key: its node (the value) and create revision.
type key struct {
	node    string
	created int64
}

// keys reads every election under prefix: channel → its keys.
func (cfg *config) keys(prefix string) map[string][]key {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cfg.cli.Get(ctx, prefix+"/", clientv3.WithPrefix())
	check(err)
	out := map[string][]key{}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix+"/")
		i := strings.LastIndexByte(rest, '/')
		if i <= 0 {
			continue
		}
		out[rest[:i]] = append(out[rest[:i]], key{node: string(kv.Value), created: kv.CreateRevision})
	}
	return out
}

// leaders returns each channel's leader: the node of its lowest key.
func leaders(keys map[string][]key) map[string]string {
	out := map[string]string{}
	for ch, ks := range keys {
		low := slices.MinFunc(ks, func(a, b key) int { return int(a.created - b.created) })
		out[ch] = low.node
	}
	return out
}

// crash kills the node leading the most channels, at a random moment
// within a TTL, and returns how long until its lease was revoked (the
// first delete of one of its keys on a watch of prefix) and until a
// live node was in office on each channel it led: offices(victim,
// since) returns, for the channels a live node took office on after
// since, when it did.
func (cfg *config) crash(prefix string, pids map[replica.NodeID]int, offices func(victim string, since time.Time) map[string]time.Time) (revoked, inOffice time.Duration) {
	time.Sleep(rand.N(cfg.ttl)) // the kill's phase in the keep-alive cadence
	before := leaders(cfg.keys(prefix))
	count := map[string]int{}
	for _, l := range before {
		count[l]++
	}
	victim := ""
	for l, c := range count {
		if victim == "" || c > count[victim] || (c == count[victim] && l < victim) {
			victim = l
		}
	}
	id, err := strconv.Atoi(victim)
	check(err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch := cfg.cli.Watch(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	if resp := <-watch; !resp.Created {
		fail(fmt.Errorf("watch %s: %w", prefix, resp.Err()))
	}
	t0 := time.Now()
	check(syscall.Kill(pids[replica.NodeID(id)], syscall.SIGKILL))
	deadline := t0.Add(time.Minute)
	for revoked == 0 {
		resp, ok := <-watch
		if !ok {
			fail(fmt.Errorf("no revocation of node %s's lease within a minute", victim))
		}
		if err := resp.Err(); err != nil {
			fail(fmt.Errorf("watch %s: %w", prefix, err))
		}
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete && ev.PrevKv != nil && string(ev.PrevKv.Value) == victim {
				revoked = time.Since(t0)
				break
			}
		}
	}
	cancel()
	for {
		at := offices(victim, t0)
		var last time.Time
		done := true
		for ch, l := range before {
			if l != victim {
				continue
			}
			t, ok := at[ch]
			if !ok {
				done = false
				break
			}
			if t.After(last) {
				last = t
			}
		}
		if done {
			return revoked, last.Sub(t0)
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("no live node in office on node %s's channels within a minute", victim))
		}
		time.Sleep(20 * time.Millisecond) // a poll of real processes; the times are their own
	}
}

func awaitReady(path string) string {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if f, err := os.Open(path); err == nil {
			line, _ := bufio.NewReader(f).ReadString('\n')
			_ = f.Close()
			if addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ready http="); ok {
				return addr
			}
			if strings.HasPrefix(line, "concnode:") {
				fail(fmt.Errorf("%s", line))
			}
		}
		time.Sleep(20 * time.Millisecond) // a poll of a real process
	}
	fail(fmt.Errorf("%s: no ready line within a minute", path))
	return ""
}

func awaitEtcd(what string, cond func() bool) {
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("no %s within two minutes", what))
		}
		time.Sleep(50 * time.Millisecond) // a poll of a real etcd
	}
}

func pidList(m map[replica.NodeID]int) []int {
	var out []int
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

func cpuTimes(pids []int) time.Duration {
	d, err := measure.CPU(pids)
	check(err)
	return d
}

func median(ss []sample, f func(sample) float64) float64 {
	var xs []float64
	for _, s := range ss {
		xs = append(xs, f(s))
	}
	return measure.Median(xs)
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "etcdside:", err)
	os.Exit(1)
}
