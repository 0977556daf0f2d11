// Command failover measures failover on real rolefsm node processes on
// 127.0.0.1: it starts N nodes holding C channels, then, K times per
// heartbeat setting and per signal, stops the node that leads the most
// channels (SIGKILL, or SIGTERM for a graceful leave) at a random
// phase of its heartbeat interval, polls the
// survivors' GET /status until every channel has exactly one Leader
// that every survivor follows, restarts the stopped node and waits for
// calm. RELINQUISH, in place of a signal, hands every channel that node
// leads over (rolefsm node -admin's POST /channels/NAME/relinquish) and
// measures the same, then rejoins them. It prints failover p50, p99 and max per setting and signal, and
// the longest time two live nodes both reported Leader for one channel.
// With -steady D it also runs N nodes for D and reports each node's CPU
// (from /proc) and its datagrams and bytes per peer per interval.
//
// With -etcd ENDPOINTS the nodes elect in etcd (-election etcd): one
// table row per -etcd-ttl and signal, with failover measured against
// the TTL; and -etcd-rate D runs one node holding -etcd-rate-channels
// channels for D and reports the requests it made to etcd per second.
//
// bench/failover.sh builds the command and runs this; its output is
// recorded in bench/recorded/.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rolefsm/rolefsm/replica"
)

func main() {
	bin := flag.String("bin", "", "the rolefsm binary (required)")
	nodes := flag.Int("nodes", 3, "nodes")
	channels := flag.Int("channels", 100, "channels every node holds")
	kills := flag.Int("kills", 20, "failovers per heartbeat setting and signal")
	heartbeats := flag.String("heartbeat", "100ms,500ms", "heartbeat intervals, comma-separated")
	miss := flag.Int("miss", 3, "missed heartbeats before a leader is presumed gone")
	signals := flag.String("signals", "KILL,TERM", "signals: KILL, TERM, or RELINQUISH (a handover over HTTP)")
	steady := flag.Duration("steady", 0, "also run a steady state this long (0: none)")
	steadyChannels := flag.Int("steady-channels", 1000, "channels per node in the steady state")
	poll := flag.Duration("poll", 5*time.Millisecond, "how often /status is polled")
	keep := flag.String("logs", "", "keep the nodes' audit logs in this directory")
	seed := flag.Uint64("seed", 1, "seed of the random phase at which a leader is stopped")
	etcd := flag.String("etcd", "", "elect in etcd at these endpoints (HOST:PORT, comma-separated)")
	ttls := flag.String("etcd-ttl", "2s", "with -etcd: session TTLs, comma-separated, one row each")
	rate := flag.Duration("etcd-rate", 0, "with -etcd: also run one node this long and report its etcd requests per second")
	rateChannels := flag.Int("etcd-rate-channels", 1000, "channels of the node of -etcd-rate")
	svg := flag.String("svg", "", "also draw the failover times as an SVG chart in this file")
	flag.Parse()
	if *bin == "" || *nodes < 2 || *channels < 1 || *kills < 0 || *steadyChannels < 1 {
		fmt.Fprintln(os.Stderr, "failover: give -bin, at least 2 -nodes, 1 -channels")
		os.Exit(2)
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "rolefsm-failover")
		check(err)
		defer os.RemoveAll(tmp)
		dir = tmp
	}

	var title string
	var rows []chartRow
	switch {
	case *kills > 0 && *etcd != "":
		title, rows = etcdFailovers(*bin, dir, *etcd, *nodes, *channels, *kills, *ttls, *signals, *poll, *seed)
	case *kills > 0:
		title, rows = failovers(*bin, dir, *nodes, *channels, *kills, *miss, *heartbeats, *signals, *poll, *seed)
	}
	if *svg != "" && len(rows) > 0 {
		f, err := os.Create(*svg)
		check(err)
		check(writeChart(f, title, rows))
		check(f.Close())
	}
	if *rate > 0 && *etcd != "" {
		etcdRate(*bin, dir, *etcd, *rateChannels, *rate)
	}
	if *steady > 0 {
		steadyState(*bin, dir, *nodes, *steadyChannels, *steady)
	}
}

// failovers prints the failover table: kills failovers per heartbeat
// setting and signal.
func failovers(bin, dir string, nodes, channels, kills, miss int, heartbeats, signals string, poll time.Duration, seed uint64) (string, []chartRow) {
	title := fmt.Sprintf("rolefsm failover: %d nodes, %d channels, -miss %d, %d failovers per row", nodes, channels, miss, kills)
	var rows []chartRow
	fmt.Printf("%s; polled every %v\n\n", title, poll)
	fmt.Printf("%-9s  %-7s  %4s  %8s  %8s  %8s  %13s  %13s  %s\n",
		"heartbeat", "signal", "runs", "p50", "p99", "max", "p50/interval", "max/interval", "longest dual leader")
	for _, hbText := range strings.Split(heartbeats, ",") {
		hb, err := time.ParseDuration(hbText)
		check(err)
		for _, sigName := range strings.Split(signals, ",") {
			c := &cluster{bin: bin, dir: dir, poll: poll, rng: rand.New(rand.NewPCG(seed, 0)),
				args: []string{"-channels-n", strconv.Itoa(channels), "-heartbeat", hb.String(), "-miss", strconv.Itoa(miss), "-admin", "-status-max-age", "0"}}
			times, dual := c.row(nodes, kills, sigName, hb)
			fmt.Printf("%-9v  %-7s  %4d  %8v  %8v  %8v  %12.1fx  %12.1fx  %v\n", hb, label(sigName), len(times),
				ms(quantile(times, 0.5)), ms(quantile(times, 0.99)), ms(times[len(times)-1]),
				float64(quantile(times, 0.5))/float64(hb), float64(times[len(times)-1])/float64(hb), ms(dual))
			rows = append(rows, chartRow{fmt.Sprintf("heartbeat %v %s", hb, label(sigName)), times})
		}
	}
	return title, rows
}

// label names a way of stopping a leader in the table: SIGKILL,
// SIGTERM, or relinquish.
func label(name string) string {
	if name == relinquish {
		return "relinquish"
	}
	return "SIG" + name
}

// relinquish, in -signals, hands the leader's channels over instead of
// stopping it.
const relinquish = "RELINQUISH"

// etcdFailovers prints the failover table of nodes that elect in etcd:
// kills failovers per TTL and signal, at a 100 ms heartbeat.
func etcdFailovers(bin, dir, etcd string, nodes, channels, kills int, ttls, signals string, poll time.Duration, seed uint64) (string, []chartRow) {
	const hb = 100 * time.Millisecond
	title := fmt.Sprintf("rolefsm failover, -election etcd: %d nodes, %d channels, heartbeat %v, %d failovers per row", nodes, channels, hb, kills)
	var rows []chartRow
	fmt.Printf("%s; polled every %v\n\n", title, poll)
	fmt.Printf("%-8s  %-7s  %4s  %8s  %8s  %8s  %8s  %8s  %s\n",
		"etcd TTL", "signal", "runs", "p50", "p99", "max", "p50/TTL", "max/TTL", "longest dual leader")
	for _, ttlText := range strings.Split(ttls, ",") {
		ttl, err := time.ParseDuration(ttlText)
		check(err)
		for _, sigName := range strings.Split(signals, ",") {
			c := &cluster{bin: bin, dir: dir, poll: poll, rng: rand.New(rand.NewPCG(seed, 0)),
				args: []string{"-channels-n", strconv.Itoa(channels), "-heartbeat", hb.String(),
					"-election", "etcd", "-etcd", etcd, "-etcd-ttl", ttl.String(),
					"-etcd-prefix", fmt.Sprintf("/bench/%v/%s", ttl, sigName), "-status-max-age", "0"}}
			// A kill falls at a random phase of the keep-alive cadence.
			times, dual := c.row(nodes, kills, sigName, ttl/3)
			fmt.Printf("%-8v  %-7s  %4d  %8v  %8v  %8v  %7.2fx  %7.2fx  %v\n", ttl, "SIG"+sigName, len(times),
				ms(quantile(times, 0.5)), ms(quantile(times, 0.99)), ms(times[len(times)-1]),
				float64(quantile(times, 0.5))/float64(ttl), float64(times[len(times)-1])/float64(ttl), ms(dual))
			rows = append(rows, chartRow{fmt.Sprintf("etcd TTL %v SIG%s", ttl, sigName), times})
		}
	}
	return title, rows
}

// etcdRate runs one node holding channels channels, electing in etcd,
// and reports the requests it made: to win every channel, then per
// second over d.
func etcdRate(bin, dir, etcd string, channels int, d time.Duration) {
	const ttl = 10 * time.Second
	c := &cluster{bin: bin, dir: dir, poll: 20 * time.Millisecond,
		args: []string{"-channels-n", strconv.Itoa(channels), "-heartbeat", "500ms",
			"-election", "etcd", "-etcd", etcd, "-etcd-ttl", ttl.String(), "-etcd-prefix", "/bench/rate"}}
	c.start(1)
	defer c.stop()
	read := func() map[string]float64 {
		out := map[string]float64{}
		for series, v := range c.metrics(1) {
			if kind, ok := strings.CutPrefix(series, "rolefsm_etcd_requests_total{kind=\""); ok {
				out[strings.TrimSuffix(kind, "\"}")] = v
				out["all"] += v
			}
		}
		return out
	}
	pid := c.nc.Procs[1].Cmd.Process.Pid
	elected, cpu0, t0 := read(), cpuTime(pid), time.Now()
	time.Sleep(d)
	after, cpu1, elapsed := read(), cpuTime(pid), time.Since(t0)
	fmt.Printf("\netcd requests: one node holding %d channels, TTL %v, measured over %v\n",
		channels, ttl, elapsed.Round(time.Second))
	fmt.Printf("to win every channel: %.0f requests (%s)\n", elected["all"], kinds(elected))
	diff := map[string]float64{}
	for k, v := range after {
		diff[k] = v - elected[k]
	}
	fmt.Printf("then: %.2f requests/s (%s)\n", diff["all"]/elapsed.Seconds(), kinds(diff))
	fmt.Printf("node CPU meanwhile: %.2f%% of a core\n", 100*float64(cpu1-cpu0)/float64(elapsed))
}

func kinds(m map[string]float64) string {
	var parts []string
	for _, k := range []string{"grant", "keepalive", "keepalive_stream", "txn", "range", "watch", "revoke"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// row starts nodes node processes, stops the busiest leader kills
// times with signal sigName (KILL or TERM) at a random phase of phase,
// stops the cluster, and returns the failover times, sorted, and the
// longest dual leader.
func (c *cluster) row(nodes, kills int, sigName string, phase time.Duration) ([]time.Duration, time.Duration) {
	sig := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM}[sigName]
	if sig == 0 && sigName != relinquish {
		check(fmt.Errorf("unknown signal %q", sigName))
	}
	c.start(nodes)
	times, dual := c.failovers(kills, sig, phase)
	c.stop()
	slices.Sort(times)
	return times, dual
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		if running != nil {
			running.StopAll()
		}
		os.Exit(1)
	}
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// quantile is the q-quantile of sorted ds, by the nearest rank.
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(float64(len(ds))*q+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// failovers stops the busiest leader k times with sig and returns each
// failover's time, and the longest stretch in which two live nodes
// both reported Leader for a channel.
func (c *cluster) failovers(k int, sig syscall.Signal, hb time.Duration) ([]time.Duration, time.Duration) {
	var times []time.Duration
	var longestDual time.Duration
	var dualSince time.Time
	track := func(dual bool) {
		now := time.Now()
		switch {
		case dual && dualSince.IsZero():
			dualSince = now
		case !dual && !dualSince.IsZero():
			longestDual = max(longestDual, now.Sub(dualSince))
			dualSince = time.Time{}
		}
	}
	for range k {
		victim := c.settle(c.live())
		// The cluster settles just after a leader's heartbeat: stop the
		// leader at a random phase of its interval, as a crash would.
		time.Sleep(time.Duration(c.rng.Int64N(int64(hb))))
		var led []string
		if sig == 0 {
			leaders, ok := c.nc.Leaders(c.live()...)
			if !ok {
				check(errors.New("the cluster no longer agrees"))
			}
			for ch, id := range leaders {
				if id == victim {
					led = append(led, ch)
				}
			}
		}
		start := time.Now()
		p := c.nc.Procs[victim]
		if sig == 0 {
			for _, ch := range led {
				c.post(victim, "/channels/"+ch+"/relinquish")
			}
		} else {
			check(p.Cmd.Process.Signal(sig))
		}
		survivors := slices.DeleteFunc(c.live(), func(id replica.NodeID) bool { return id == victim })
		for {
			ok, _, dual := c.observe(survivors)
			track(dual)
			if ok {
				times = append(times, time.Since(start))
				break
			}
			if time.Since(start) > 2*time.Minute {
				check(errors.New("no failover within 2 minutes"))
			}
			time.Sleep(c.poll)
		}
		if sig == 0 {
			for _, ch := range led {
				c.post(victim, "/channels/"+ch+"/rejoin")
			}
			c.settle(c.live())
			for calm := time.Now().Add(5 * hb); time.Now().Before(calm); time.Sleep(c.poll) {
				_, _, dual := c.observe(c.live())
				track(dual)
			}
			continue
		}
		<-p.Done
		if sig == syscall.SIGTERM && p.Err != nil {
			check(fmt.Errorf("node %d: exit after SIGTERM: %w", victim, p.Err))
		}
		delete(c.nc.Procs, victim)
		_, err := c.nc.Start(victim) // the same key and address: a restart
		check(err)
		// Calm: everyone agrees again, then for 5 intervals more.
		c.settle(c.live())
		for calm := time.Now().Add(5 * hb); time.Now().Before(calm); time.Sleep(c.poll) {
			_, _, dual := c.observe(c.live())
			track(dual)
		}
	}
	track(false)
	return times, longestDual
}

// steadyState runs n nodes of channels each at a 500 ms heartbeat for
// d and reports what each costs.
func steadyState(bin, dir string, n, channels int, d time.Duration) {
	const hb = 500 * time.Millisecond
	c := &cluster{bin: bin, dir: dir, poll: 20 * time.Millisecond,
		args: []string{"-channels-n", strconv.Itoa(channels), "-heartbeat", hb.String()}}
	c.start(n)
	defer c.stop()
	type sample struct {
		cpu             time.Duration
		datagrams, size float64
	}
	read := func() []sample {
		var out []sample
		for _, id := range c.live() {
			m := c.metrics(id)
			out = append(out, sample{cpu: cpuTime(c.nc.Procs[id].Cmd.Process.Pid),
				datagrams: m["rolefsm_transport_datagrams_sent_total"], size: m["rolefsm_transport_bytes_sent_total"]})
		}
		return out
	}
	time.Sleep(2 * hb) // past the first elections
	before, t0 := read(), time.Now()
	time.Sleep(d)
	after, elapsed := read(), time.Since(t0)
	intervals := float64(elapsed) / float64(hb)
	fmt.Printf("\nsteady state: %d nodes, %d channels each, heartbeat %v, measured over %v (%.0f intervals)\n",
		n, channels, hb, elapsed.Round(time.Second), intervals)
	fmt.Printf("%-4s  %-7s  %12s  %14s  %24s  %20s\n", "node", "leads", "CPU", "CPU/interval", "datagrams/peer/interval", "bytes/peer/interval")
	_, most, _ := c.observe(c.live())
	for i := range after {
		cpu := after[i].cpu - before[i].cpu
		leads := ""
		if replica.NodeID(i+1) == most {
			leads = "most"
		}
		fmt.Printf("%-4d  %-7s  %11.1f%%  %14v  %24.1f  %20.0f\n", i+1, leads,
			100*float64(cpu)/float64(elapsed), (time.Duration(float64(cpu) / intervals)).Round(10*time.Microsecond),
			(after[i].datagrams-before[i].datagrams)/float64(n-1)/intervals,
			(after[i].size-before[i].size)/float64(n-1)/intervals)
	}
}
