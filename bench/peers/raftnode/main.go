// Command raftnode is one member of G hashicorp/raft groups, the peer
// that bench/sidebyside.sh runs beside rolefsm node processes: one raft
// group per rolefsm channel, each with its own TCP transport (raft's
// way: a listener and a connection pool per group), logs and snapshots
// in memory (rolefsm keeps no disk either), and raft's logging off.
//
//	raftnode -id 1 -addrs FILE [-timeout 300ms]
//
// FILE holds one line per group, the addresses of its members in id
// order, comma-separated. It prints "ready" once it has started every
// group, "elected" once every group it belongs to knows a leader, and
// runs until SIGINT or SIGTERM.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "raftnode:", err)
		os.Exit(1)
	}
}

func run() error {
	id := flag.Int("id", 0, "this member's id, 1-based")
	addrsFile := flag.String("addrs", "", "the groups' addresses: a line per group, its members' in id order")
	timeout := flag.Duration("timeout", 300*time.Millisecond, "raft's heartbeat, election and leader lease timeouts")
	flag.Parse()
	groups, err := readAddrs(*addrsFile)
	if err != nil {
		return err
	}
	if *id < 1 {
		return errors.New("-id: want 1 or more")
	}
	var rafts []*raft.Raft
	defer func() {
		for _, r := range rafts {
			_ = r.Shutdown().Error()
		}
	}()
	for g, members := range groups {
		if *id > len(members) {
			return fmt.Errorf("group %d has %d members, no member %d", g, len(members), *id)
		}
		r, err := start(*id, members, *timeout)
		if err != nil {
			return fmt.Errorf("group %d: %w", g, err)
		}
		rafts = append(rafts, r)
	}
	fmt.Println("ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	elected := false
	for {
		select {
		case <-stop:
			return nil
		case <-poll.C:
			if !elected && allLed(rafts) {
				elected = true
				fmt.Println("elected")
				poll.Stop() // nothing more to watch: the benchmark measures raft at rest
			}
		}
	}
}

func allLed(rafts []*raft.Raft) bool {
	for _, r := range rafts {
		if addr, _ := r.LeaderWithID(); addr == "" {
			return false
		}
	}
	return true
}

func start(id int, members []string, timeout time.Duration) (*raft.Raft, error) {
	self := members[id-1]
	tr, err := raft.NewTCPTransport(self, nil, 3, 10*time.Second, io.Discard)
	if err != nil {
		return nil, err
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(fmt.Sprint(id))
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = timeout, timeout, timeout
	cfg.LogOutput = io.Discard
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(cfg, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), tr)
	if err != nil {
		return nil, err
	}
	var servers []raft.Server
	for i, a := range members {
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i + 1)), Address: raft.ServerAddress(a)})
	}
	// Every member bootstraps with the same configuration, as raft
	// allows: the first election settles who leads.
	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return nil, err
	}
	return r, nil
}

func readAddrs(path string) ([][]string, error) {
	if path == "" {
		return nil, errors.New("-addrs: required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var groups [][]string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); line != "" {
			groups = append(groups, strings.Split(line, ","))
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("%s: no group", path)
	}
	return groups, nil
}

// nopFSM applies nothing: the benchmark commits no entry.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (nopSnapshot) Release()                             {}
