package replica

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
)

// TestScripts runs the scenario scripts in testdata/: each drives one
// Node through its inputs, as its peers and its application would, and
// prints what came out. Refresh the expected output with -rewrite, then
// read the diff.
//
//	node id=1 [heartbeat=500ms] [miss=3] [policy=tail|upstream|nobody] [phase=0ms] [external] [evidence=peers|own]
//	open ch=a replicas=(1,2,3) [tail=N] [pressure] [closed] [t=MS]
//	step t=MS from=N [seq=N] [heard=(N@MS,...)]
//	                         (input: one entry a line: CHANNEL ROLE TAIL [+led],
//	                         +led: the sender has a live leader there;
//	                         heard: what the sender reports it last heard
//	                         of node N, MS milliseconds before it sent,
//	                         or N@never)
//	tick t=MS                (prints the batches, then the reports they carry)
//	leave t=MS               (a graceful shutdown: prints the goodbyes)
//	rtt peer=N d=DURATION
//	tail ch=a n=N
//	pressure ch=a on|off [t=MS]
//	close|rejoin|relinquish|remove ch=a [t=MS]
//	status [ch=a]
//	peers
//	holds ch=a               (does the lease taken on winning still hold)
//	due                      (when the node next needs a Tick: Node.Due)
//	stand ch=a [t=MS]        (an external backend's decisions, Config.External)
//	elected|stepdown|follow ch=a leader=N [t=MS]
//
// Times are milliseconds since the node started. Every command prints
// the transitions its channels' observers saw, then its own output
// (messages sent, an error, a status).
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if strings.HasPrefix(path, filepath.Join("testdata", "interaction")) {
			t.Skip("several nodes: TestInteractions runs these")
		}
		h := &harness{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return h.run(t, d)
		})
	})
}

type harness struct {
	n     *Node
	start time.Time
	now   time.Time
	log   strings.Builder
	cues  int // OnChange calls since the last "changes"
}

var ctx = context.Background()

func (h *harness) at(t *testing.T, d *datadriven.TestData) time.Time {
	if d.HasArg("t") {
		var ms int
		d.ScanArgs(t, "t", &ms)
		h.now = h.start.Add(time.Duration(ms) * time.Millisecond)
	}
	return h.now
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	var out strings.Builder
	if d.Cmd != "node" && h.n == nil {
		t.Fatalf("%s: no node yet", d.Pos)
	}
	var err error
	switch d.Cmd {
	case "node":
		cfg := Config{ID: NodeID(intArg(t, d, "id", 1))}
		hb, herr := policy.NewHeartbeat(durArg(t, d, "heartbeat", 500*time.Millisecond), intArg(t, d, "miss", 3))
		if herr != nil {
			return "error: " + herr.Error()
		}
		cfg.Heartbeat = hb
		cfg.Phase = durArg(t, d, "phase", 0)
		cfg.External = d.HasArg("external")
		if d.HasArg("evidence") {
			if cfg.Evidence, err = ParseEvidence(strArg(t, d, "evidence")); err != nil {
				return "error: " + err.Error()
			}
		}
		if d.HasArg("policy") {
			var name string
			d.ScanArgs(t, "policy", &name)
			if name == "nobody" {
				cfg.Policy = nobody{}
			} else if cfg.Policy, err = policy.ParsePolicy(name); err != nil {
				t.Fatal(err)
			}
		}
		h.start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		h.now = h.start
		h.n, err = NewNode(cfg, h.start)
		if err == nil {
			h.cues = 0
			h.n.OnChange(func() { h.cues++ })
		}
	case "open":
		cfg := ChannelConfig{Name: strArg(t, d, "ch"), Tail: uint64(intArg(t, d, "tail", 0)),
			DiskPressure: d.HasArg("pressure"), Closed: d.HasArg("closed")}
		if arg, ok := d.Arg("replicas"); ok {
			for _, v := range arg.Vals {
				if v == "" {
					continue
				}
				id, perr := strconv.ParseUint(v, 10, 64)
				if perr != nil {
					t.Fatal(perr)
				}
				cfg.Replicas = append(cfg.Replicas, NodeID(id))
			}
		}
		cfg.Options = []rolefsm.Option{rolefsm.WithObserver(h.observe(cfg.Name))}
		err = h.n.Open(ctx, h.at(t, d), cfg)
	case "step":
		b := Batch{From: NodeID(intArg(t, d, "from", 0)), Seq: uint64(intArg(t, d, "seq", 0)), Incarnation: uint64(intArg(t, d, "inc", 0))}
		if arg, ok := d.Arg("heard"); ok {
			for _, v := range arg.Vals {
				var id uint64
				var age int64
				r := Report{Age: NeverHeard}
				if _, serr := fmt.Sscanf(v, "%d@never", &id); serr != nil {
					if _, serr := fmt.Sscanf(v, "%d@%d", &id, &age); serr != nil {
						t.Fatalf("%s: heard %q: want N@MS or N@never", d.Pos, v)
					}
					r.Age = time.Duration(age) * time.Millisecond
				}
				r.Node = NodeID(id)
				b.Heard = append(b.Heard, r)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			if line == "" {
				continue
			}
			var e Entry
			var role string
			if _, serr := fmt.Sscan(line, &e.Channel, &role, &e.Tail); serr != nil {
				t.Fatalf("%s: entry %q: %v", d.Pos, line, serr)
			}
			if e.Role, err = rolefsm.ParseRole(role); err != nil {
				e.Role = rolefsm.Role(99) // a role no node sends
			}
			e.HasLeader = strings.HasSuffix(strings.TrimSpace(line), " +led")
			b.Entries = append(b.Entries, e)
		}
		err = h.n.Step(ctx, h.at(t, d), b)
	case "tick", "leave":
		msgs := h.n.Tick
		if d.Cmd == "leave" {
			msgs = h.n.Leave
		}
		var heard []Report
		for _, m := range msgs(ctx, h.at(t, d)) {
			heard = m.Batch.Heard // every batch of a heartbeat carries the same
			fmt.Fprintf(&out, "→ n%d #%d:", m.To, m.Batch.Seq)
			for i, e := range m.Batch.Entries {
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(&out, "%s %s %v %d", sep, e.Channel, e.Role, e.Tail)
				if e.HasLeader {
					out.WriteString(" +led")
				}
			}
			out.WriteString("\n")
		}
		if len(heard) > 0 {
			out.WriteString("  heard:")
			for _, r := range heard {
				if r.Age == NeverHeard {
					fmt.Fprintf(&out, " n%d@never", r.Node)
					continue
				}
				fmt.Fprintf(&out, " n%d@%s", r.Node, ms(r.Age))
			}
			out.WriteString("\n")
		}
	case "rtt":
		err = h.n.ObserveRTT(NodeID(intArg(t, d, "peer", 0)), durArg(t, d, "d", 0))
	case "tail":
		err = h.n.SetTail(strArg(t, d, "ch"), uint64(intArg(t, d, "n", 0)))
	case "pressure":
		on := d.HasArg("on")
		if !on && !d.HasArg("off") {
			t.Fatalf("%s: pressure on or off?", d.Pos)
		}
		err = h.n.SetDiskPressure(ctx, h.at(t, d), strArg(t, d, "ch"), on)
	case "close":
		err = h.n.Close(ctx, h.at(t, d), strArg(t, d, "ch"))
	case "rejoin":
		err = h.n.Rejoin(ctx, h.at(t, d), strArg(t, d, "ch"))
	case "relinquish":
		err = h.n.Relinquish(ctx, h.at(t, d), strArg(t, d, "ch"))
	case "remove":
		err = h.n.Remove(ctx, h.at(t, d), strArg(t, d, "ch"))
	case "status":
		names := h.n.Channels()
		if d.HasArg("ch") {
			names = []string{strArg(t, d, "ch")}
		}
		for _, name := range names {
			st, serr := h.n.Status(name)
			if serr != nil {
				err = serr
				break
			}
			fmt.Fprintf(&out, "%s: %v gen=%d tail=%d leader=%d", st.Channel, st.Role, st.Generation, st.Tail, st.Leader)
			if st.Leader != 0 && st.Leader != h.n.ID() {
				fmt.Fprintf(&out, " leader-tail=%d claimed=%t", st.LeaderTail, st.LeaderClaimed)
			}
			fmt.Fprintf(&out, " contact=%s", ms(st.Contact.Sub(h.start)))
			if !st.Vouched.IsZero() {
				fmt.Fprintf(&out, " vouched=%s", ms(st.Vouched.Sub(h.start)))
			}
			if st.Lossy {
				out.WriteString(" lossy")
			}
			if st.CutOff {
				out.WriteString(" cut-off")
			}
			if st.Lease != (rolefsm.Lease{}) {
				fmt.Fprintf(&out, " lease=%v/%d", st.Lease.Role, st.Lease.Generation)
			}
			if st.DiskPressure {
				out.WriteString(" pressure")
			}
			if st.Parked {
				out.WriteString(" parked")
			}
			out.WriteString("\n")
		}
	case "peers":
		for _, p := range h.n.Peers() {
			fmt.Fprintf(&out, "n%d: channels=%d", p.ID, p.Channels)
			if p.Heard {
				fmt.Fprintf(&out, " heard=%s healthy=%t batches=%d", ms(p.LastHeard.Sub(h.start)), p.Healthy, p.Batches)
			}
			if p.HasRTT {
				fmt.Fprintf(&out, " rtt=%v", p.RTT)
			}
			out.WriteString("\n")
		}
	case "stand":
		err = h.n.Stand(ctx, h.at(t, d), strArg(t, d, "ch"))
	case "elected":
		err = h.n.Elected(ctx, h.at(t, d), strArg(t, d, "ch"), NodeID(intArg(t, d, "leader", 0)))
	case "stepdown":
		err = h.n.StepDown(ctx, h.at(t, d), strArg(t, d, "ch"), NodeID(intArg(t, d, "leader", 0)))
	case "follow":
		err = h.n.Follow(h.at(t, d), strArg(t, d, "ch"), NodeID(intArg(t, d, "leader", 0)))
	case "due":
		fmt.Fprintf(&out, "due=%s\n", ms(h.n.Due().Sub(h.start)))
	case "changes":
		// What an External node's backend is told (TakeChanges), and
		// how many cues it had (OnChange) since the last look.
		fmt.Fprintf(&out, "changed: %s (cues: %d)\n", strings.Join(h.n.TakeChanges(nil), " "), h.cues)
		h.cues = 0
	case "holds":
		ch := h.n.Channel(strArg(t, d, "ch"))
		if ch == nil {
			return "error: no such channel"
		}
		fmt.Fprintf(&out, "%t\n", ch.Lease().Role == rolefsm.Leader && ch.Coordinator().Holds(ch.Lease()))
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	res := h.log.String() + out.String()
	h.log.Reset()
	if err != nil {
		res += "error: " + err.Error() + "\n"
		var se *StepError
		if errors.As(err, &se) {
			for _, e := range se.Dropped {
				res += "  dropped " + e.Error() + "\n"
			}
		}
	}
	if res == "" {
		return "ok\n"
	}
	return res
}

func (h *harness) observe(name string) rolefsm.Observer {
	return func(_ context.Context, rec rolefsm.Record) {
		if rec.Err != nil {
			fmt.Fprintf(&h.log, "%s: rejected: %v\n", name, rec.Err)
			return
		}
		cold := ""
		if rec.ColdStart {
			cold = " cold-start" // a first election: not thrash
		}
		fmt.Fprintf(&h.log, "%s: %v #%d%s\n", name, rec.Transition, rec.Generation, cold)
	}
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

func strArg(t *testing.T, d *datadriven.TestData, key string) string {
	var s string
	d.ScanArgs(t, key, &s)
	return s
}

func intArg(t *testing.T, d *datadriven.TestData, key string, def int) int {
	if !d.HasArg(key) {
		return def
	}
	var v int
	d.ScanArgs(t, key, &v)
	return v
}

func durArg(t *testing.T, d *datadriven.TestData, key string, def time.Duration) time.Duration {
	if !d.HasArg(key) {
		return def
	}
	v, err := time.ParseDuration(strArg(t, d, key))
	if err != nil {
		t.Fatalf("%s: %s: %v", d.Pos, key, err)
	}
	return v
}

// nobody is an election policy that finds nobody eligible.
type nobody struct{}

func (nobody) Elect(policy.NodeID, []policy.Member) policy.Outcome { return policy.Outcome{} }
func (nobody) Name() string                                        { return "nobody" }
