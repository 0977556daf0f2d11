// Command sidebyside measures rolefsm node processes beside the peer a
// user would pick instead, hashicorp/raft, on the same machine at rest:
// 3 processes a side, N rolefsm channels against N raft groups (one
// group per channel, as raft needs), both sides in every round, the
// order alternating, medians over the rounds. bench/sidebyside.sh runs
// it; bench/recorded/sidebyside.txt holds its output.
//
// Each side is started, waited for until every channel or group has a
// leader, left to warm up, then measured: the CPU of its 3 processes
// (utime+stime from /proc, in % of one core, summed) and each
// process's resident set (VmRSS) at the end.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rolefsm/rolefsm/bench/peers/internal/measure"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmtest/nodeproc"
)

type config struct {
	rolefsm, raftnode string
	dir               string
	warm, measure     time.Duration
	heartbeat         time.Duration
	miss              int
	raftTimeout       time.Duration
}

// sample is one side's figures in one round.
type sample struct {
	cpu float64   // % of one core, the 3 processes summed
	rss []float64 // MiB, each process's
}

const members = 3

func main() {
	var cfg config
	flag.StringVar(&cfg.rolefsm, "rolefsm", "", "the rolefsm binary (required)")
	flag.StringVar(&cfg.raftnode, "raftnode", "", "the raftnode binary (required)")
	ns := flag.String("n", "1,10,100", "channels (and raft groups) per process, comma-separated, one row each")
	rounds := flag.Int("rounds", 3, "rounds: each runs both sides, the order alternating")
	flag.DurationVar(&cfg.warm, "warm", 2*time.Second, "wait this long after every channel has a leader")
	flag.DurationVar(&cfg.measure, "measure", 20*time.Second, "measure for this long")
	flag.DurationVar(&cfg.heartbeat, "heartbeat", 100*time.Millisecond, "rolefsm's heartbeat interval")
	flag.IntVar(&cfg.miss, "miss", 3, "rolefsm's miss threshold")
	flag.DurationVar(&cfg.raftTimeout, "raft-timeout", 300*time.Millisecond, "raft's heartbeat, election and lease timeouts")
	flag.Parse()
	if cfg.rolefsm == "" || cfg.raftnode == "" || *rounds < 1 || cfg.measure <= 0 {
		fmt.Fprintln(os.Stderr, "usage: sidebyside -rolefsm BIN -raftnode BIN [-n 1,10,100] [-rounds 3] [-measure 20s]")
		os.Exit(2)
	}
	var counts []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "sidebyside: -n: %q is not a count\n", s)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	dir, err := os.MkdirTemp("", "sidebyside")
	check(err)
	defer os.RemoveAll(dir)
	cfg.dir = dir

	fmt.Printf("at rest, side by side: %d processes a side; rolefsm channels (heartbeat %v × %d, keys on) against hashicorp/raft v1.8.0 groups (timeouts %v, TCP, logs in memory)\n",
		members, cfg.heartbeat, cfg.miss, cfg.raftTimeout)
	fmt.Printf("%d rounds, order alternating, medians; CPU over %v after a %v warm-up, %% of one core for all %d processes; RSS per process\n\n",
		*rounds, cfg.measure, cfg.warm, members)
	fmt.Printf("%-6s %12s %12s %8s %14s %14s %8s\n", "N", "rolefsm CPU", "raft CPU", "ratio", "rolefsm RSS", "raft RSS", "ratio")
	for _, n := range counts {
		var ours, theirs []sample
		for r := range *rounds {
			sides := []func() sample{func() sample { return cfg.runRolefsm(n) }, func() sample { return cfg.runRaft(n) }}
			if r%2 == 1 {
				b := sides[1]()
				a := sides[0]()
				ours, theirs = append(ours, a), append(theirs, b)
			} else {
				a := sides[0]()
				b := sides[1]()
				ours, theirs = append(ours, a), append(theirs, b)
			}
			fmt.Fprintf(os.Stderr, "sidebyside: N=%d round %d: rolefsm %.2f%% %v MiB, raft %.2f%% %v MiB\n",
				n, r+1, ours[r].cpu, ours[r].rss, theirs[r].cpu, theirs[r].rss)
		}
		oc, tc := measure.Median(cpus(ours)), measure.Median(cpus(theirs))
		om, tm := measure.Median(rsses(ours)), measure.Median(rsses(theirs))
		fmt.Printf("%-6d %11.2f%% %11.2f%% %8.2f %10.1f MiB %10.1f MiB %8.2f\n", n, oc, tc, oc/tc, om, tm, om/tm)
	}
}

func (cfg config) runRolefsm(n int) sample {
	ids := []replica.NodeID{1, 2, 3}
	c, err := nodeproc.New(cfg.rolefsm, cfg.dir, ids, "-channels-n", strconv.Itoa(n),
		"-heartbeat", cfg.heartbeat.String(), "-miss", strconv.Itoa(cfg.miss))
	check(err)
	defer c.StopAll()
	var pids []int
	for _, id := range ids {
		p, err := c.Start(id)
		check(err)
		pids = append(pids, p.Cmd.Process.Pid)
	}
	check(c.Await("a leader on every channel", 20*time.Millisecond, func() (bool, error) {
		leaders, ok := c.Leaders(ids...)
		return ok && len(leaders) == n, nil
	}))
	return cfg.measureProcs(pids)
}

func (cfg config) runRaft(n int) sample {
	// Free ports for every member of every group, held until all are
	// chosen so that none is chosen twice.
	var ls []net.Listener
	var lines []string
	for range n {
		var addrs []string
		for range members {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			check(err)
			ls = append(ls, l)
			addrs = append(addrs, l.Addr().String())
		}
		lines = append(lines, strings.Join(addrs, ","))
	}
	for _, l := range ls {
		check(l.Close())
	}
	addrs := filepath.Join(cfg.dir, "raft-addrs")
	check(os.WriteFile(addrs, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	var cmds []*exec.Cmd
	var outs []string
	defer func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, cmd := range cmds {
			_ = cmd.Wait()
		}
	}()
	var pids []int
	for id := 1; id <= members; id++ {
		out := filepath.Join(cfg.dir, fmt.Sprintf("raft%d.out", id))
		f, err := os.Create(out)
		check(err)
		cmd := exec.Command(cfg.raftnode, "-id", strconv.Itoa(id), "-addrs", addrs, "-timeout", cfg.raftTimeout.String())
		cmd.Stdout, cmd.Stderr = f, f
		check(cmd.Start())
		check(f.Close())
		cmds, outs = append(cmds, cmd), append(outs, out)
		pids = append(pids, cmd.Process.Pid)
	}
	deadline := time.Now().Add(time.Minute)
	for !allSay(outs, "elected") {
		if time.Now().After(deadline) {
			check(fmt.Errorf("raft: no leader in every group within a minute:\n%s", tails(outs)))
		}
		time.Sleep(20 * time.Millisecond) // a poll of real processes
	}
	return cfg.measureProcs(pids)
}

func (cfg config) measureProcs(pids []int) sample {
	time.Sleep(cfg.warm)
	before, t0 := cpuTimes(pids), time.Now()
	time.Sleep(cfg.measure)
	after, elapsed := cpuTimes(pids), time.Since(t0)
	var s sample
	s.cpu = 100 * float64(after-before) / float64(elapsed)
	for _, pid := range pids {
		s.rss = append(s.rss, rssMiB(pid))
	}
	return s
}

func allSay(paths []string, word string) bool {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !slices.Contains(strings.Fields(string(b)), word) {
			return false
		}
	}
	return true
}

func tails(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		out, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "--- %s:\n%s\n", filepath.Base(p), out[max(0, len(out)-2000):])
	}
	return b.String()
}

func cpuTimes(pids []int) time.Duration {
	d, err := measure.CPU(pids)
	check(err)
	return d
}

func rssMiB(pid int) float64 {
	b, err := nodeproc.RSS(pid)
	check(err)
	return float64(b) / (1 << 20)
}

func cpus(ss []sample) []float64 {
	var out []float64
	for _, s := range ss {
		out = append(out, s.cpu)
	}
	return out
}

func rsses(ss []sample) []float64 {
	var out []float64
	for _, s := range ss {
		out = append(out, s.rss...)
	}
	return out
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(1)
	}
}
