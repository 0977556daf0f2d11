package rolefsmetcd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// TestPass runs the scripts in testdata/pass: an elector's passes over
// a real replica.Node, with the view of etcd written by the script and
// the transactions committed to it by hand, so that what a pass does to
// the node and asks of etcd can be read a pass at a time, with no etcd
// and no real time. Refresh with -rewrite, then read the diff.
//
//	node id=N replicas=N,N channels=NAME,NAME   a node with External on, and its elector
//	session lease=HEX                           a session granted now (TTL 10 s, margin 2 s)
//	tick d=DURATION                             the clock moves on
//	put channel=NAME lease=HEX node=N           a key appears in the view (another session's)
//	del channel=NAME lease=HEX                  a key leaves the view
//	disk channel=NAME on|off                    the node's disk pressure
//	remove channel=NAME                         the node removes the channel
//	stepdown channel=NAME                       the watchdog steps the leader down (stale session)
//	relinquish channel=NAME                     Elector.Relinquish: its key's delete commits, its event held back
//	rejoin channel=NAME                         the node rejoins the channel
//	deliver                                     the held-back watch events reach the view
//	pass [fail] [full]                          one pass; its transaction commits, or fails; full: the safety pass
//	status                                      each channel's role and leader
//
// A pass prints the channels it visited (every one on a full pass or
// when the session changed; else those a key change, a failed request
// or the node's own changes name), each transition the node made, then
// the operations it sent to etcd, then the tokens the elector holds. A
// committed transaction's puts and deletes reach the view as the watch
// would deliver them, at the next revision, and mark their channels.
func TestPass(t *testing.T) {
	datadriven.Walk(t, "testdata/pass", func(t *testing.T, path string) {
		var p *passRig
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "node" && p == nil {
				t.Fatalf("%s: %s before node", d.Pos, d.Cmd)
			}
			switch d.Cmd {
			case "node":
				p = newPassRig(t, d)
				return ""
			case "session":
				var hex string
				d.ScanArgs(t, "lease", &hex)
				p.e.lease.Store(parseLease(t, d, hex))
				p.e.valid.renewed(p.now, p.e.cfg.TTL)
				return ""
			case "tick":
				var s string
				d.ScanArgs(t, "d", &s)
				dur, err := time.ParseDuration(s)
				if err != nil {
					t.Fatalf("%s: %v", d.Pos, err)
				}
				p.now = p.now.Add(dur)
				return ""
			case "put":
				var ch, hex string
				var node uint64
				d.ScanArgs(t, "channel", &ch)
				d.ScanArgs(t, "lease", &hex)
				d.ScanArgs(t, "node", &node)
				p.commit([]clientv3.Op{clientv3.OpPut(p.e.view.key(ch, parseLease(t, d, hex)), strconv.FormatUint(node, 10))})
				return ""
			case "del":
				var ch, hex string
				d.ScanArgs(t, "channel", &ch)
				d.ScanArgs(t, "lease", &hex)
				p.commit([]clientv3.Op{clientv3.OpDelete(p.e.view.key(ch, parseLease(t, d, hex)))})
				return ""
			case "disk":
				var ch string
				d.ScanArgs(t, "channel", &ch)
				if err := p.n.SetDiskPressure(context.Background(), p.now, ch, d.HasArg("on")); err != nil {
					t.Fatalf("%s: %v", d.Pos, err)
				}
				return p.transitions()
			case "remove":
				var ch string
				d.ScanArgs(t, "channel", &ch)
				if err := p.n.Remove(context.Background(), p.now, ch); err != nil {
					t.Fatalf("%s: %v", d.Pos, err)
				}
				return p.transitions()
			case "stepdown":
				// What the watchdog does on a stale session.
				var ch string
				d.ScanArgs(t, "channel", &ch)
				p.e.dropToken(ch)
				if err := p.n.StepDown(context.Background(), p.now, ch, 0); err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				return p.transitions()
			case "relinquish":
				// What Elector.Relinquish does: the node leaves office and
				// the key's delete commits, its watch event held back
				// until deliver.
				var ch string
				d.ScanArgs(t, "channel", &ch)
				if err := p.n.Relinquish(context.Background(), p.now, ch); err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				p.e.dropToken(ch)
				rev := p.hold([]clientv3.Op{clientv3.OpDelete(p.e.view.key(ch, p.e.lease.Load()))})
				p.e.noteResigned([]string{ch}, rev)
				return p.transitions() + fmt.Sprintf("etcd: delete %s/%x committed at %d, not yet delivered\n", ch, p.e.lease.Load(), rev)
			case "rejoin":
				var ch string
				d.ScanArgs(t, "channel", &ch)
				if err := p.n.Rejoin(context.Background(), p.now, ch); err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				return p.transitions()
			case "deliver":
				p.e.applyEvents(p.held)
				p.held = clientv3.WatchResponse{}
				return ""
			case "pass":
				return p.pass(d.HasArg("fail"), d.HasArg("full"))
			case "status":
				return p.status()
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}

type passRig struct {
	t    *testing.T
	n    *replica.Node
	e    *Elector
	now  time.Time
	subs map[string]*rolefsm.Subscription
	rev  int64                  // the revision of the last transaction committed
	held clientv3.WatchResponse // events committed, not yet delivered to the view
}

func newPassRig(t *testing.T, d *datadriven.TestData) *passRig {
	var id uint64
	var replicas, channels string
	d.ScanArgs(t, "id", &id)
	d.ScanArgs(t, "replicas", &replicas)
	d.ScanArgs(t, "channels", &channels)
	p := &passRig{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), subs: map[string]*rolefsm.Subscription{}}
	n, err := replica.NewNode(replica.Config{ID: replica.NodeID(id), External: true}, p.now)
	if err != nil {
		t.Fatalf("%s: %v", d.Pos, err)
	}
	var set []replica.NodeID
	for _, r := range strings.Split(replicas, ",") {
		v, err := strconv.ParseUint(r, 10, 64)
		if err != nil {
			t.Fatalf("%s: replicas=%q", d.Pos, replicas)
		}
		set = append(set, replica.NodeID(v))
	}
	for _, ch := range strings.Split(channels, ",") {
		if err := n.Open(context.Background(), p.now, replica.ChannelConfig{Name: ch, Replicas: set}); err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		p.subs[ch] = n.Coordinator(ch).Subscribe(16)
	}
	cfg := Config{TTL: 10 * time.Second, Now: func() time.Time { return p.now }}
	cfg.Client = &clientv3.Client{} // fill wants one; plan never calls it
	if err := cfg.fill(); err != nil {
		t.Fatal(err)
	}
	p.n = n
	p.e = &Elector{
		cfg: cfg, id: n.ID(),
		valid:    validity{ttl: cfg.TTL, margin: cfg.Margin},
		view:     newView(cfg.Prefix),
		cands:    map[string]int64{},
		tokens:   map[string]Token{},
		won:      map[string]int64{},
		resigned: map[string]int64{},
		full:     true,
		dirty:    map[string]struct{}{},
		retry:    map[string]struct{}{},
	}
	return p
}

func parseLease(t *testing.T, d *datadriven.TestData, hex string) int64 {
	v, err := strconv.ParseInt(hex, 16, 64)
	if err != nil || v <= 0 {
		t.Fatalf("%s: lease=%q", d.Pos, hex)
	}
	return v
}

// commit applies ops to the view as one transaction at the next
// revision, as the watch delivers it (the elector's own applyEvents),
// and returns that revision.
func (p *passRig) commit(ops []clientv3.Op) int64 {
	rev := p.hold(ops)
	p.e.applyEvents(p.held)
	p.held = clientv3.WatchResponse{}
	return rev
}

// hold commits ops as one transaction at the next revision, and keeps
// its watch events back (with any held before) until delivered.
func (p *passRig) hold(ops []clientv3.Op) int64 {
	v := p.e.view
	p.rev = max(p.rev, v.rev) + 1
	rev := p.rev
	wr := &p.held
	wr.Header = &pb.ResponseHeader{Revision: rev}
	for _, op := range ops {
		switch {
		case op.IsPut():
			// A put on a standing key keeps its create revision; the
			// key stands as the view, then the held-back events, say.
			created := rev
			if ch, lease, ok := v.parse(string(op.KeyBytes())); ok {
				if c, ok := v.has(ch, lease); ok {
					created = c.created
				}
			}
			for _, ev := range wr.Events {
				if string(ev.Kv.Key) != string(op.KeyBytes()) {
					continue
				}
				if ev.Type == clientv3.EventTypeDelete {
					created = rev
				} else {
					created = ev.Kv.CreateRevision
				}
			}
			wr.Events = append(wr.Events, &clientv3.Event{Type: clientv3.EventTypePut,
				Kv: &mvccpb.KeyValue{Key: op.KeyBytes(), Value: op.ValueBytes(), CreateRevision: created, ModRevision: rev}})
		case op.IsDelete():
			wr.Events = append(wr.Events, &clientv3.Event{Type: clientv3.EventTypeDelete,
				Kv: &mvccpb.KeyValue{Key: op.KeyBytes(), ModRevision: rev}})
		default:
			p.t.Fatalf("a pass sent %v", op)
		}
	}
	return rev
}

func (p *passRig) pass(fail, full bool) string {
	if full {
		p.e.full = true
	}
	ops, campaigns, touched := p.e.plan(context.Background(), p.n, p.now, p.e.lease.Load())
	var b strings.Builder
	visited := strings.Join(p.e.names, " ")
	if visited == "" {
		visited = "none"
	}
	fmt.Fprintf(&b, "visited: %s\n", visited)
	b.WriteString(p.transitions())
	for _, op := range ops {
		key := strings.TrimPrefix(string(op.KeyBytes()), p.e.view.prefix)
		if op.IsPut() {
			fmt.Fprintf(&b, "etcd: put %s = %s\n", key, op.ValueBytes())
		} else {
			fmt.Fprintf(&b, "etcd: delete %s\n", key)
		}
	}
	if len(ops) > 0 {
		if fail {
			b.WriteString("etcd: failed\n")
			p.e.campaigned(campaigns, 0, fmt.Errorf("unavailable"))
			for _, ch := range touched {
				p.e.dirty[ch] = struct{}{} // retried on a later pass
			}
		} else {
			rev := p.commit(ops)
			fmt.Fprintf(&b, "etcd: committed at %d\n", rev)
			p.e.committed(ops, rev, nil)
			p.e.campaigned(campaigns, rev, nil)
		}
	}
	for _, ch := range slices.Sorted(maps.Keys(p.subs)) {
		if tok, ok := p.e.Token(ch); ok {
			fmt.Fprintf(&b, "token %s: %s@%d\n", ch, strings.TrimPrefix(tok.Key, p.e.view.prefix), tok.Revision)
		}
	}
	if b.Len() == 0 {
		return "nothing\n"
	}
	return b.String()
}

// transitions drains every channel's records, in channel order.
func (p *passRig) transitions() string {
	var b strings.Builder
	for _, ch := range slices.Sorted(maps.Keys(p.subs)) {
		for {
			select {
			case r := <-p.subs[ch].C:
				fmt.Fprintf(&b, "%s: %v → %v (%v)\n", ch, r.From, r.To, r.Signal)
				continue
			default:
			}
			break
		}
	}
	return b.String()
}

// status prints each channel's role and the leader it follows.
func (p *passRig) status() string {
	var b strings.Builder
	for _, ch := range slices.Sorted(maps.Keys(p.subs)) {
		st, err := p.n.Status(ch)
		if err != nil {
			p.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %v, leader %d\n", ch, st.Role, st.Leader)
	}
	return b.String()
}
