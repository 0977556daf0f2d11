// Command punctuality measures how punctual a rolefsm node's heartbeats
// are: it runs one node process (insecure, on loopback) whose only peer
// is this program's UDP socket, and records the gaps between the
// heartbeats that arrive, for each combination of a CPU hog (busy
// processes, one more than the cores, at normal priority) and of the
// node's log going to a file or to a pipe nobody reads. It prints the
// gaps' p50, p99 and max against the interval.
//
//	go run ./bench/punctuality -bin ./rolefsm [-channels 1000] [-heartbeat 100ms] [-duration 20s]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// sink is what a burner busies itself with.
var sink atomic.Uint64

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-burn" {
		for { // a CPU hog: one busy process
			sink.Add(1)
		}
	}
	bin := flag.String("bin", "", "the rolefsm binary (required)")
	channels := flag.Int("channels", 1000, "channels the node holds (each commits and logs at start)")
	hb := flag.Duration("heartbeat", 100*time.Millisecond, "heartbeat interval")
	d := flag.Duration("duration", 20*time.Second, "how long each row listens")
	flag.Parse()
	if *bin == "" || *channels < 1 || *hb < 100*time.Millisecond || *d <= 0 {
		fmt.Fprintln(os.Stderr, "punctuality: give -bin, -channels ≥ 1, -heartbeat ≥ 100ms, -duration > 0")
		os.Exit(2)
	}
	hogs := runtime.NumCPU() + 1
	fmt.Printf("rolefsm heartbeat punctuality: one node, %d channels, heartbeat %v, %v a row; gaps between heartbeats (their first datagrams) as received on loopback\n\n",
		*channels, *hb, *d)
	fmt.Printf("%-22s  %-16s  %5s  %9s  %9s  %9s  %s\n", "load", "log", "beats", "p50 gap", "p99 gap", "max gap", "late by more than an interval")
	for _, hog := range []bool{false, true} {
		for _, blocked := range []bool{false, true} {
			gaps := row(*bin, *channels, *hb, *d, hog, blocked, hogs)
			load := "idle"
			if hog {
				load = fmt.Sprintf("CPU hog (%d busy procs)", hogs)
			}
			log := "to a file"
			if blocked {
				log = "pipe never read"
			}
			late := 0
			for _, g := range gaps {
				if g > 2**hb {
					late++
				}
			}
			fmt.Printf("%-22s  %-16s  %5d  %9v  %9v  %9v  %d\n", load, log, len(gaps)+1,
				q(gaps, 0.5), q(gaps, 0.99), gaps[len(gaps)-1].Round(time.Millisecond), late)
		}
	}
}

// row runs the node once and returns the sorted gaps between the
// heartbeats received over d.
func row(bin string, channels int, hb, d time.Duration, hog, blocked bool, hogs int) []time.Duration {
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	check(err)
	defer peer.Close()
	self := freeUDP()
	cmd := exec.Command(bin, "node", "-id", "1", "-listen", self, "-insecure",
		"-peers", "2="+peer.LocalAddr().String(), "-channels-n", strconv.Itoa(channels), "-heartbeat", hb.String())
	out, err := cmd.StdoutPipe()
	check(err)
	if blocked {
		r, w, err := os.Pipe() // r is held open and never read
		check(err)
		cmd.Stderr = w
		defer r.Close()
		defer w.Close()
	} else {
		f, err := os.CreateTemp("", "rolefsm-punctuality-*.log")
		check(err)
		defer os.Remove(f.Name())
		defer f.Close()
		cmd.Stderr = f
	}
	var burners []*exec.Cmd
	if hog {
		self, err := os.Executable()
		check(err)
		for range hogs {
			b := exec.Command(self, "-burn")
			check(b.Start())
			burners = append(burners, b)
		}
	}
	defer func() {
		for _, b := range burners {
			_ = b.Process.Kill()
			_ = b.Wait()
		}
	}()
	check(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		check(fmt.Errorf("the node did not start: %w", err))
	}
	buf := make([]byte, 1<<16)
	var arrivals []time.Time
	// The first second is the start (the election alone, the log of
	// every channel's first transitions); the rest is the steady state.
	warm := time.Now().Add(time.Second)
	for time.Now().Before(warm) {
		check(peer.SetReadDeadline(warm))
		if _, _, err := peer.ReadFromUDP(buf); err != nil {
			break
		}
	}
	end := time.Now().Add(d)
	var last time.Time
	for time.Now().Before(end) {
		check(peer.SetReadDeadline(end))
		if _, _, err := peer.ReadFromUDP(buf); err != nil {
			break // the deadline
		}
		// A heartbeat of many channels is several datagrams, sent
		// back to back: the first of them times it.
		now := time.Now()
		if len(arrivals) == 0 || now.Sub(last) > hb/5 {
			arrivals = append(arrivals, now)
		}
		last = now
	}
	if len(arrivals) < 2 {
		check(fmt.Errorf("%d heartbeats arrived in %v", len(arrivals), d))
	}
	gaps := make([]time.Duration, 0, len(arrivals)-1)
	for i := 1; i < len(arrivals); i++ {
		gaps = append(gaps, arrivals[i].Sub(arrivals[i-1]))
	}
	slices.Sort(gaps)
	return gaps
}

func q(ds []time.Duration, p float64) time.Duration {
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))].Round(time.Millisecond)
}

func freeUDP() string {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	check(err)
	defer c.Close()
	return c.LocalAddr().String()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "punctuality:", err)
		os.Exit(1)
	}
}
