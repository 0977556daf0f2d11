package replica_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmtest"
)

// TestInteractions runs the cross-node scripts in testdata/interaction/:
// several nodes on rolefsmtest.Cluster's fake clock, every heartbeat
// delivered at once unless a partition or a stop says otherwise, so
// that rules between nodes (a failover, a concession on heal, a
// goodbye) read as stories rather than timing tests (etcd-io/raft's
// InteractionEnv is the model). Refresh with -rewrite, then read the
// diff.
//
//	cluster n=N channels=(a,b) [heartbeat=100ms] [miss=3]
//	advance D                 the clock, in the cluster's ticks of 10 ms
//	settle [within=D]         advance until every side agrees on a leader per channel
//	partition N...            cut the nodes given off from the others
//	heal
//	stop N | start N | leave N
//	relinquish N ch           node N hands channel ch over (Node.Relinquish)
//	close N ch                node N closes channel ch (Node.Close)
//	pressure N ch             disk pressure on node N's channel ch
//	status                    every running node's role and leader per channel
//	tail N ch=V               node N's log on channel ch ends at V
//	lease N ch                remember node N's lease of channel ch
//	holds N ch                whether the lease remembered still holds there
//
// Every command prints the transitions the coordinators committed
// meanwhile, at their fake times (ms since the start), then its output.
// A first election with no leader heard since the channel opened is
// marked "cold start": it is counted apart from thrash.
func TestInteractions(t *testing.T) {
	datadriven.Walk(t, "testdata/interaction", func(t *testing.T, path string) {
		env := &interaction{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return env.run(t, d)
		})
	})
}

type interaction struct {
	c     *rolefsmtest.Cluster
	n     int
	chans []string
	start time.Time
	log   strings.Builder
	kept  map[string]rolefsm.Lease // by "N ch", for holds
}

func (e *interaction) ms(at time.Time) int64 { return at.Sub(e.start).Milliseconds() }

func (e *interaction) ids(t *testing.T, d *datadriven.TestData) []replica.NodeID {
	var out []replica.NodeID
	for _, a := range d.CmdArgs {
		var id int
		if _, err := fmt.Sscan(a.Key, &id); err != nil || id < 1 || id > e.n {
			t.Fatalf("%s: %q is not a node", d.Pos, a.Key)
		}
		out = append(out, replica.NodeID(id))
	}
	return out
}

func (e *interaction) run(t *testing.T, d *datadriven.TestData) string {
	if d.Cmd != "cluster" && e.c == nil {
		t.Fatalf("%s: no cluster yet", d.Pos)
	}
	var out strings.Builder
	switch d.Cmd {
	case "cluster":
		d.ScanArgs(t, "n", &e.n)
		d.ScanArgs(t, "channels", &e.chans)
		hb, miss := 100*time.Millisecond, 3
		if d.HasArg("heartbeat") {
			var v string
			d.ScanArgs(t, "heartbeat", &v)
			var err error
			if hb, err = time.ParseDuration(v); err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
		}
		if d.HasArg("miss") {
			d.ScanArgs(t, "miss", &miss)
		}
		e.start = time.Unix(0, 0).UTC() // rolefsmtest.Cluster's clock starts there
		e.c = rolefsmtest.NewCluster(t, e.n, e.chans, rolefsmtest.WithHeartbeat(hb, miss),
			rolefsmtest.WithObserver(func(node replica.NodeID, r rolefsm.Record) {
				if r.Err == nil {
					cold := ""
					if r.ColdStart {
						cold = ", cold start"
					}
					fmt.Fprintf(&e.log, "%5dms node %d %s: %v → %v (%v%s)\n", e.ms(r.At), node, r.Name, r.From, r.To, r.Signal, cold)
				}
			}))
		out.WriteString("ok\n")
	case "advance":
		dur, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		e.c.Advance(dur)
		fmt.Fprintf(&out, "at %dms\n", e.ms(e.c.Now()))
	case "settle":
		within := 5 * time.Second
		if d.HasArg("within") {
			var v string
			d.ScanArgs(t, "within", &v)
			var err error
			if within, err = time.ParseDuration(v); err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
		}
		leaders := e.c.WaitForLeaders(within)
		fmt.Fprintf(&out, "at %dms:", e.ms(e.c.Now()))
		for _, ch := range e.chans {
			fmt.Fprintf(&out, " %s=%v", ch, leaders[ch])
		}
		out.WriteString("\n")
	case "partition":
		e.c.Partition(e.ids(t, d)...)
		out.WriteString("ok\n")
	case "heal":
		e.c.Heal()
		out.WriteString("ok\n")
	case "stop", "start", "leave":
		for _, id := range e.ids(t, d) {
			map[string]func(replica.NodeID){"stop": e.c.Stop, "start": e.c.Start, "leave": e.c.Leave}[d.Cmd](id)
		}
		out.WriteString("ok\n")
	case "status":
		for id := replica.NodeID(1); int(id) <= e.n; id++ {
			n := e.c.Node(id)
			var parts []string
			for _, ch := range slices.Clone(e.chans) {
				st, err := n.Status(ch)
				if err != nil {
					t.Fatal(err)
				}
				parts = append(parts, fmt.Sprintf("%s=%v(leader %d)", ch, st.Role, st.Leader))
			}
			fmt.Fprintf(&out, "node %d: %s\n", id, strings.Join(parts, " "))
		}
	case "relinquish", "close", "pressure":
		id, ch := e.nodeAndChannel(t, d)
		n := e.c.Node(id)
		do := map[string]func() error{
			"relinquish": func() error { return n.Relinquish(context.Background(), e.c.Now(), ch) },
			"close":      func() error { return n.Close(context.Background(), e.c.Now(), ch) },
			"pressure":   func() error { return n.SetDiskPressure(context.Background(), e.c.Now(), ch, true) },
		}[d.Cmd]
		if err := do(); err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		out.WriteString("ok\n")
	case "tail":
		id, ch := e.nodeAndChannel(t, d)
		var v uint64
		d.ScanArgs(t, ch, &v)
		if err := e.c.Node(id).SetTail(ch, v); err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		out.WriteString("ok\n")
	case "lease", "holds":
		id, ch := e.nodeAndChannel(t, d)
		key := fmt.Sprintf("%d %s", id, ch)
		if d.Cmd == "lease" {
			l, err := e.c.Node(id).Lease(ch)
			if err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
			if e.kept == nil {
				e.kept = map[string]rolefsm.Lease{}
			}
			e.kept[key] = l
			fmt.Fprintf(&out, "%v\n", l)
			break
		}
		l, ok := e.kept[key]
		if !ok {
			t.Fatalf("%s: no lease kept for node %d on %s", d.Pos, id, ch)
		}
		fmt.Fprintf(&out, "%v holds: %t\n", l, e.c.Coordinator(id, ch).Holds(l))
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	s := e.log.String() + out.String()
	e.log.Reset()
	return s
}

// nodeAndChannel reads "N ch" or "N ch=V": a node, then one of the
// cluster's channels.
func (e *interaction) nodeAndChannel(t *testing.T, d *datadriven.TestData) (replica.NodeID, string) {
	if len(d.CmdArgs) != 2 {
		t.Fatalf("%s: want a node and a channel", d.Pos)
	}
	var id int
	if _, err := fmt.Sscan(d.CmdArgs[0].Key, &id); err != nil || id < 1 || id > e.n {
		t.Fatalf("%s: %q is not a node", d.Pos, d.CmdArgs[0].Key)
	}
	ch := d.CmdArgs[1].Key
	if !slices.Contains(e.chans, ch) {
		t.Fatalf("%s: %q is not a channel of the cluster", d.Pos, ch)
	}
	return replica.NodeID(id), ch
}
