package udp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// TestScripts runs the protocol's scenario scripts in testdata/: node
// processes on a network in memory, on one fake clock, with no socket
// and no goroutine, every datagram delivered by the script, so that
// each attack and fault reads as a story. Refresh the expected output
// with -rewrite, then read the diff.
//
//	cluster n=3 [insecure]     nodes 1..n, each with its own key, at 10.0.0.ID:7000
//	start id=N [name=S] [addr=A] [key=N] [wrongkey=N] [skew=D] [insecure]
//	                           a process of node N (name S, default "N"):
//	                           a restart if one runs, a second process of
//	                           the node if S is new; key=N: with node N's
//	                           key; wrongkey=N: configured with a key for
//	                           peer N that is no one's; skew: its clock
//	                           is off by D
//	stop name=S
//	send from=S to=N [seq=N]   a heartbeat: one entry a line, CHANNEL ROLE TAIL
//	tick                       every process's timers (handshake retries, rekeys)
//	deliver [drop=TYPE|all] [max=N]
//	                           deliver what is in flight, and what that
//	                           sends, until nothing is (drop: lose those)
//	capture on|off             keep a copy of every datagram delivered
//	replay to=S [type=TYPE] [orig=S] [index=I]
//	                           send the copies (delivered or lost) again:
//	                           of one type, or first sent to orig, or the
//	                           I-th only; to S, from their sources
//	inject to=S from=A         send the hex bytes of the input, from A
//	advance D                  move the clock
//	stats name=S               the process's non-zero counters
//	peers name=S               what the process knows of each peer (Transport.Peers)
//
// Every command prints what the processes logged, then its own output.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		w := &wireNet{now: time.Unix(1_000_000, 0), procs: map[string]*proc{}, keys: map[replica.NodeID]PrivateKey{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return w.run(t, d)
		})
	})
}

type dgram struct {
	from, to netip.AddrPort
	d        []byte
}

type proc struct {
	name string
	id   replica.NodeID
	addr netip.AddrPort
	t    *Transport
}

type wireNet struct {
	now      time.Time
	insecure bool
	n        int
	procs    map[string]*proc
	keys     map[replica.NodeID]PrivateKey
	flight   []dgram
	capture  bool
	captured []dgram
	log      strings.Builder
}

func addrOf(id replica.NodeID) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(id)}), 7000)
}

// logHandler prints a transport's records as one line each.
type logHandler struct {
	w     *wireNet
	name  string
	attrs []slog.Attr
}

func (h logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	fmt.Fprintf(&h.w.log, "%s %s: %s", strings.ToLower(r.Level.String()), h.name, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "public_key", "this_process": // random or the same on every line
		default:
			fmt.Fprintf(&h.w.log, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	h.w.log.WriteString("\n")
	return nil
}
func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.w, h.name, append(slices.Clone(h.attrs), as...)}
}
func (h logHandler) WithGroup(string) slog.Handler { return h }

// start starts a process of node id at addr with node key's key; it
// knows peer wrong by a key of no one's, and its clock is skewed.
func (w *wireNet) start(t testing.TB, name string, id replica.NodeID, addr netip.AddrPort, key, wrong replica.NodeID, skew time.Duration, insecure bool) {
	peers := map[replica.NodeID]Peer{}
	for p := replica.NodeID(1); int(p) <= w.n; p++ {
		if p != id && p != key { // a process with another node's key does not list that node
			k := w.keys[p].Public()
			if p == wrong {
				other, err := GenerateKey()
				if err != nil {
					t.Fatal(err)
				}
				k = other.Public()
			}
			peers[p] = Peer{Addr: addrOf(p).String(), Keys: []PublicKey{k}}
		}
	}
	cfg := Config{ID: id, Peers: peers, Insecure: insecure, Now: func() time.Time { return w.now.Add(skew) },
		Logger: slog.New(logHandler{w: w, name: name})}
	if !insecure {
		cfg.Key = w.keys[key]
	}
	tr, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.local = addr.String()
	tr.write = func(d []byte, to netip.AddrPort) error {
		w.flight = append(w.flight, dgram{from: addr, to: to, d: slices.Clone(d)})
		tr.sent.Add(1)
		return nil
	}
	w.procs[name] = &proc{name: name, id: id, addr: addr, t: tr}
}

func (w *wireNet) byAddr(a netip.AddrPort) *proc {
	for _, p := range w.procs {
		if p.addr == a {
			return p
		}
	}
	return nil
}

var typeNames = map[byte]string{typeInitiation: "initiation", typeResponse: "response", typeData: "data", typePlain: "plain"}

func typeOf(d []byte) string {
	if len(d) < 4 {
		return "short"
	}
	if n, ok := typeNames[d[3]]; ok {
		return n
	}
	return "type" + strconv.Itoa(int(d[3]))
}

func (w *wireNet) name(a netip.AddrPort) string {
	if p := w.byAddr(a); p != nil {
		return p.name
	}
	return a.String()
}

// deliverOne hands d to the process at its address, and says what came
// of it.
func (w *wireNet) deliverOne(g dgram) string {
	head := fmt.Sprintf("%s → %s %s: ", w.name(g.from), w.name(g.to), typeOf(g.d))
	p := w.byAddr(g.to)
	if p == nil {
		return head + "no process"
	}
	if w.capture {
		w.captured = append(w.captured, g)
	}
	from, in, r, ok := p.t.receive(w.now, g.from, g.d)
	switch {
	case !ok:
		return head + "dropped " + r.String()
	case from == 0:
		return head + "ok"
	}
	b := in.Batch
	var es []string
	for _, e := range b.Entries {
		es = append(es, fmt.Sprintf("%s %v %d", e.Channel, e.Role, e.Tail))
	}
	p.t.in.recycle(b.Entries)
	return head + fmt.Sprintf("heartbeat from=%d seq=%d inc=%d [%s]", b.From, b.Seq, b.Incarnation, strings.Join(es, ", "))
}

func (w *wireNet) proc(t *testing.T, d *datadriven.TestData, key string) *proc {
	var name string
	d.ScanArgs(t, key, &name)
	p := w.procs[name]
	if p == nil {
		t.Fatalf("%s: no process %q", d.Pos, name)
	}
	return p
}

func (w *wireNet) run(t *testing.T, d *datadriven.TestData) string {
	w.log.Reset()
	out := &w.log // the processes' log lines and the command's output, in order
	switch d.Cmd {
	case "cluster":
		if w.n != 0 {
			t.Fatalf("%s: one cluster a script", d.Pos)
		}
		d.ScanArgs(t, "n", &w.n)
		w.insecure = d.HasArg("insecure")
		for id := replica.NodeID(1); int(id) <= w.n; id++ {
			k, err := GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			w.keys[id] = k
		}
		for id := replica.NodeID(1); int(id) <= w.n; id++ {
			w.start(t, strconv.Itoa(int(id)), id, addrOf(id), id, 0, 0, w.insecure)
		}
		out.WriteString("ok\n")
	case "start":
		var id int
		d.ScanArgs(t, "id", &id)
		name, addr, key := strconv.Itoa(id), addrOf(replica.NodeID(id)), id
		if d.HasArg("name") {
			d.ScanArgs(t, "name", &name)
		}
		if d.HasArg("addr") {
			var a string
			d.ScanArgs(t, "addr", &a)
			addr = netip.MustParseAddrPort(a)
		}
		if d.HasArg("key") {
			d.ScanArgs(t, "key", &key)
		}
		wrong := 0
		if d.HasArg("wrongkey") {
			d.ScanArgs(t, "wrongkey", &wrong)
		}
		var skew time.Duration
		if d.HasArg("skew") {
			var v string
			d.ScanArgs(t, "skew", &v)
			var err error
			if skew, err = time.ParseDuration(v); err != nil {
				t.Fatal(err)
			}
		}
		w.start(t, name, replica.NodeID(id), addr, replica.NodeID(key), replica.NodeID(wrong), skew,
			w.insecure || d.HasArg("insecure"))
		out.WriteString("ok\n")
	case "stop":
		delete(w.procs, w.proc(t, d, "name").name)
		out.WriteString("ok\n")
	case "send":
		from := w.proc(t, d, "from")
		var to, seq int
		d.ScanArgs(t, "to", &to)
		if d.HasArg("seq") {
			d.ScanArgs(t, "seq", &seq)
		}
		b := replica.Batch{From: from.id, Seq: uint64(seq)}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			if line == "" {
				continue
			}
			var e replica.Entry
			var role string
			if _, err := fmt.Sscanf(line, "%s %s %d", &e.Channel, &role, &e.Tail); err != nil {
				t.Fatalf("%s: %q: %v", d.Pos, line, err)
			}
			r, err := rolefsm.ParseRole(role)
			if err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
			e.Role = r
			b.Entries = append(b.Entries, e)
		}
		if err := from.t.Send(context.Background(), replica.NodeID(to), b); err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
		} else {
			fmt.Fprintf(out, "%d in flight\n", len(w.flight))
		}
	case "tick":
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range w.procs {
				if !yield(n) {
					return
				}
			}
		})
		for _, n := range names {
			p := w.procs[n]
			p.t.mu.Lock()
			p.t.maintain(w.now)
			p.t.mu.Unlock()
		}
		fmt.Fprintf(out, "%d in flight\n", len(w.flight))
	case "deliver":
		drop, limit := "", 1000
		if d.HasArg("drop") {
			d.ScanArgs(t, "drop", &drop)
		}
		if d.HasArg("max") {
			d.ScanArgs(t, "max", &limit)
		}
		for i := 0; i < limit && len(w.flight) > 0; i++ {
			g := w.flight[0]
			w.flight = w.flight[1:]
			if drop == "all" || drop == typeOf(g.d) {
				fmt.Fprintf(out, "%s → %s %s: lost\n", w.name(g.from), w.name(g.to), typeOf(g.d))
				if w.capture {
					w.captured = append(w.captured, g)
				}
				continue
			}
			res := w.deliverOne(g)
			out.WriteString(res + "\n")
		}
		if len(w.flight) > 0 {
			fmt.Fprintf(out, "%d still in flight\n", len(w.flight))
		}
	case "capture":
		w.capture = d.CmdArgs[0].Key == "on"
		if !w.capture {
			fmt.Fprintf(out, "%d captured\n", len(w.captured))
		} else {
			w.captured = nil
			out.WriteString("ok\n")
		}
	case "replay":
		to := w.proc(t, d, "to")
		typ, orig, index := "", "", -1
		if d.HasArg("index") {
			d.ScanArgs(t, "index", &index)
		}
		if d.HasArg("type") {
			d.ScanArgs(t, "type", &typ)
		}
		if d.HasArg("orig") {
			d.ScanArgs(t, "orig", &orig)
		}
		saved, was := w.captured, w.capture
		w.capture = false // the replays are not copied again
		defer func() { w.capture = was }()
		counts := map[string]int{}
		for i, g := range saved {
			if (typ != "" && typeOf(g.d) != typ) || (orig != "" && w.name(g.to) != orig) || (index >= 0 && i != index) {
				continue
			}
			g.to = to.addr
			res := w.deliverOne(g)
			counts[res[strings.Index(res, ": ")+2:]]++
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range counts {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(out, "%d × %s\n", counts[k], k)
		}
	case "inject":
		to := w.proc(t, d, "to")
		var from string
		d.ScanArgs(t, "from", &from)
		var b []byte
		for _, f := range strings.Fields(d.Input) {
			v, err := strconv.ParseUint(f, 16, 8)
			if err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
			b = append(b, byte(v))
		}
		out.WriteString(w.deliverOne(dgram{from: netip.MustParseAddrPort(from), to: to.addr, d: b}) + "\n")
	case "advance":
		dur, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		w.now = w.now.Add(dur)
		out.WriteString("ok\n")
	case "stats":
		p := w.proc(t, d, "name")
		s := p.t.Stats()
		for _, r := range Reasons() {
			if s.Dropped[r] != 0 {
				fmt.Fprintf(out, "dropped %s: %d\n", r, s.Dropped[r])
			}
		}
		fmt.Fprintf(out, "handshakes sent=%d answered=%d completed=%d\n", s.HandshakesSent, s.HandshakesAnswered, s.HandshakesCompleted)
		if s.DuplicateIdentity != 0 {
			fmt.Fprintf(out, "duplicate identity: %d\n", s.DuplicateIdentity)
		}
	case "peers":
		p := w.proc(t, d, "name")
		for _, ps := range p.t.Peers() {
			fmt.Fprintf(out, "peer %d at %s: session=%t handshakes=%d boots=%d delivered=%d", ps.ID, ps.Addr, ps.Session, ps.Handshakes, ps.Boots, ps.Delivered)
			if ps.From != "" && ps.From != ps.Addr {
				fmt.Fprintf(out, " from=%s", ps.From)
			}
			for _, r := range Reasons() {
				if ps.Dropped[r] != 0 {
					fmt.Fprintf(out, " %s=%d", r, ps.Dropped[r])
				}
			}
			out.WriteString("\n")
		}
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return out.String()
}
