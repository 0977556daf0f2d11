package rolefsmetcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

var bg = context.Background()

// One etcd member, three nodes: one leader per channel, whom the others
// follow; etcd's own election API reads the same leader, with the
// token's revision; the whole node campaigns on one session.
func TestOneLeaderPerChannel(t *testing.T) {
	r := newRig(t, 1, "a", "b", "c", "d")
	for _, id := range ids(3) {
		r.start(r.add(id, ids(3), r.etcd.Endpoints(), false))
	}
	r.waitFor("one leader per channel, followed by the others", func() bool { return r.settled(ids(3)...) })
	r.noDualLeader()

	obs := r.nodes[1].cli
	s, err := concurrency.NewSession(obs, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, ch := range r.channels {
		l := r.leaders(ch)[0]
		tok, ok := r.nodes[l].el.Token(ch)
		if !ok {
			t.Fatalf("%s: leader %d has no token", ch, l)
		}
		resp, err := concurrency.NewElection(s, DefaultPrefix+"/"+ch).Leader(bg)
		if err != nil {
			t.Fatalf("%s: etcd's election API: %v", ch, err)
		}
		kv := resp.Kvs[0]
		if string(kv.Key) != tok.Key || kv.CreateRevision != tok.Revision || string(kv.Value) != strconv.Itoa(int(l)) {
			t.Errorf("%s: etcd says %s@%d (%s), node %d holds %v", ch, kv.Key, kv.CreateRevision, kv.Value, l, tok)
		}
		for _, id := range ids(3) {
			if _, ok := r.nodes[id].el.Token(ch); ok != (id == l) {
				t.Errorf("%s: node %d has a token: %t, leads: %t", ch, id, ok, id == l)
			}
		}
	}
	// Three renewals each (TTL 2 s: one a second), all on one stream.
	r.waitFor("three keep-alives a node", func() bool {
		for _, id := range ids(3) {
			if r.nodes[id].el.Stats().KeepAlives < 3 {
				return false
			}
		}
		return true
	})
	for _, id := range ids(3) {
		st := r.nodes[id].el.Stats()
		if st.Grants != 1 || st.Watches != 1 || st.KeepAliveStreams != 1 {
			t.Errorf("node %d: %d grants, %d watches, %d keep-alive streams, want one session, one watch and one stream for 4 channels",
				id, st.Grants, st.Watches, st.KeepAliveStreams)
		}
		if !r.nodes[id].el.valid.valid(time.Now()) {
			t.Errorf("node %d: its session is not valid after its keep-alives", id)
		}
	}
}

// Every follower waits in line with a key of its own, so that when the
// leader's session expires at the server (its node crashed, or lost
// etcd: here its client is closed), the next key leads and its node
// takes office on the watch event alone: the nodes that take over send
// etcd nothing.
func TestFailoverNeedsNoRequest(t *testing.T) {
	r := newRig(t, 1, "a", "b", "c")
	one := r.add(1, ids(3), r.etcd.Endpoints(), false)
	r.start(one)
	r.waitFor("node 1 leads", func() bool { return r.settled(1) })
	for _, id := range []replica.NodeID{2, 3} {
		r.start(r.add(id, ids(3), r.etcd.Endpoints(), false))
	}
	r.waitFor("nodes 2 and 3 follow node 1, in line", func() bool {
		if !r.settled(ids(3)...) {
			return false
		}
		resp, err := one.cli.Get(bg, DefaultPrefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == int64(3*len(r.channels))
	})
	sent := map[replica.NodeID]uint64{2: r.nodes[2].el.Stats().Txns, 3: r.nodes[3].el.Stats().Txns}
	old := map[string]Token{}
	for _, ch := range r.channels {
		old[ch], _ = one.el.Token(ch)
	}
	if err := one.cli.Close(); err != nil {
		t.Fatal(err)
	}
	r.waitFor("node 2 or 3 leads every channel", func() bool {
		for _, ch := range r.channels {
			ls := r.leaders(ch)
			if len(ls) != 1 || ls[0] == 1 {
				return false
			}
		}
		return true
	})
	r.noDualLeader()
	for id, before := range sent {
		if got := r.nodes[id].el.Stats().Txns; got != before {
			t.Errorf("node %d sent %d transactions to take over, want none", id, got-before)
		}
	}
	for _, ch := range r.channels {
		r.fenced(ch, old[ch])
	}
}

// A graceful relinquish hands over at once: another node leads while
// the old leader's session is still alive at the server, so nobody
// waited for its TTL.
func TestRelinquishHandsOverAtOnce(t *testing.T) {
	r := newRig(t, 1, "a", "b")
	r.cfg.TTL = 60 * time.Second // far beyond the wait below
	// No safety pass within the test: events drive every pass (the
	// first, the watch's, the node's own changes).
	r.cfg.Resync = time.Hour
	for _, id := range ids(3) {
		r.start(r.add(id, ids(3), r.etcd.Endpoints(), false))
	}
	r.waitFor("one leader per channel", func() bool { return r.settled(ids(3)...) })
	old := r.leaders("a")[0]
	on := r.nodes[old]
	tok, _ := on.el.Token("a")
	c := on.node.Coordinator("a")
	var recs []rolefsm.Record
	sub := c.Subscribe(8)
	if err := on.el.Relinquish(bg, "a"); err != nil {
		t.Fatal(err)
	}
	if err := on.el.Relinquish(bg, "a"); !errors.Is(err, replica.ErrNotLeader) {
		t.Errorf("a second relinquish: %v, want ErrNotLeader", err)
	}
	if _, ok := on.el.Token("a"); ok {
		t.Error("the token outlived the term")
	}
	r.waitFor("another leader of a", func() bool {
		ls := r.leaders("a")
		return len(ls) == 1 && ls[0] != old
	})
	ttl, err := on.cli.TimeToLive(bg, clientv3.LeaseID(on.el.lease.Load()))
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("the old leader's session: %+v, %v; want it alive", ttl, err)
	}
	sub.Close()
	for rec := range sub.C {
		recs = append(recs, rec)
	}
	if len(recs) == 0 || recs[0].Signal != rolefsm.GracefulRelinquish {
		t.Errorf("the old leader's records: %v", recs)
	}
	fenced, err := on.cli.Txn(bg).If(tok.Guard()).Then(clientv3.OpPut("/store/x", "late")).Commit()
	if err != nil || fenced.Succeeded {
		t.Errorf("a write fenced by the relinquished term's token went through (%v)", err)
	}
	// The third node follows the new leader; the old one stays Idle
	// until it rejoins.
	nu := r.leaders("a")[0]
	third := 6 - old - nu
	r.waitFor("the third node follows the new leader", func() bool { return r.status(r.nodes[third], "a").Leader == nu })
	if got := r.role(old, "a"); got != rolefsm.Idle {
		t.Errorf("the relinquished node is %v", got)
	}
	r.noDualLeader()
}

// A leader that leaves office by itself, on the node (a Close, as disk
// pressure would), has its key resigned at once: the node tells the
// elector (replica.Node.OnChange), so another node leads while the old
// session lives, with no safety pass to wait for.
func TestLocalCloseResignsAtOnce(t *testing.T) {
	r := newRig(t, 1, "a")
	r.cfg.TTL = 60 * time.Second
	r.cfg.Resync = time.Hour
	for _, id := range ids(3) {
		r.start(r.add(id, ids(3), r.etcd.Endpoints(), false))
	}
	r.waitFor("one leader", func() bool { return r.settled(ids(3)...) })
	old := r.leaders("a")[0]
	on := r.nodes[old]
	if err := on.drv.Do(func(n *replica.Node, now time.Time) error { return n.Close(bg, now, "a") }); err != nil {
		t.Fatal(err)
	}
	r.waitFor("another leader of a", func() bool {
		ls := r.leaders("a")
		return len(ls) == 1 && ls[0] != old
	})
	if ttl, err := on.cli.TimeToLive(bg, clientv3.LeaseID(on.el.lease.Load())); err != nil || ttl.TTL <= 0 {
		t.Fatalf("the old leader's session: %+v, %v; want it alive", ttl, err)
	}
	r.noDualLeader()
}

// A leader whose connection to etcd is cut leaves office before any
// other node's campaign can win: at no instant do two nodes hold
// Leader, and the old term's token no longer passes at etcd. Once the
// connection is back, the old leader follows the new ones on a new
// session. With one etcd member, and with three (node 1 reaches only
// the first, through the proxy; the others reach all three). The proxy
// holds every byte both ways while the cut lasts, as a partition does
// to a TCP connection: late, never lost. (Its blackhole drops bytes
// from the middle of the stream, which no network does to TCP: the
// HTTP/2 connection then stays up with its header compression out of
// step, and every new stream on it is refused.)
func TestLeaderCutFromEtcdLeavesOfficeFirst(t *testing.T) {
	for _, members := range []int{1, 3} {
		t.Run(fmt.Sprintf("members=%d", members), func(t *testing.T) { leaderCut(t, members) })
	}
}

func leaderCut(t *testing.T, members int) {
	r := newRig(t, members, "a", "b", "c")
	one := r.add(1, ids(3), r.etcd.Endpoints(), true)
	r.start(one)
	r.waitFor("node 1 leads every channel", func() bool { return r.settled(1) })
	for _, id := range []replica.NodeID{2, 3} {
		r.start(r.add(id, ids(3), r.etcd.Endpoints(), false))
	}
	r.waitFor("nodes 2 and 3 follow node 1", func() bool { return r.settled(ids(3)...) })
	old := map[string]Token{}
	for _, ch := range r.channels {
		old[ch], _ = one.el.Token(ch)
	}

	one.proxy.PauseTx()
	one.proxy.PauseRx()
	r.waitFor("node 2 or 3 leads every channel", func() bool {
		for _, ch := range r.channels {
			ls := r.leaders(ch)
			if !slices.Contains(ls, 2) && !slices.Contains(ls, 3) {
				return false
			}
		}
		return true
	})
	r.noDualLeader()
	r.waitFor("nodes 2 and 3 lead every channel", func() bool { return r.settled(2, 3) })
	if got := one.el.Stats().StepDowns; got != uint64(len(r.channels)) {
		t.Errorf("node 1 stepped down %d times for a stale session, want %d", got, len(r.channels))
	}
	for _, ch := range r.channels {
		if got := r.role(1, ch); got != rolefsm.Replica {
			t.Errorf("%s: node 1 is %v", ch, got)
		}
		if _, ok := one.el.Token(ch); ok {
			t.Errorf("%s: node 1 kept its token", ch)
		}
		r.fenced(ch, old[ch])
	}

	one.proxy.UnpauseTx()
	one.proxy.UnpauseRx()
	// Its first session expired at the server: it opens a second, on a
	// new keep-alive stream (the first hung, unanswered).
	r.waitFor("node 1 follows the new leaders on a new session", func() bool {
		return r.settled(ids(3)...) && one.el.Stats().Grants == 2 && one.el.valid.valid(time.Now())
	})
	r.noDualLeader()
	if got := one.el.Stats().KeepAliveStreams; got < 2 {
		t.Errorf("node 1 opened %d keep-alive streams, want a new one after the cut", got)
	}
}

// Three etcd members, one of which dies: elections go on with the
// other two.
func TestElectionsGoOnWhenAnEtcdMemberDies(t *testing.T) {
	r := newRig(t, 3, "a", "b")
	for _, id := range ids(3) {
		r.start(r.add(id, ids(3), r.etcd.Endpoints(), false))
	}
	r.waitFor("one leader per channel", func() bool { return r.settled(ids(3)...) })
	r.etcd.Stop(0)
	old := r.leaders("a")[0]
	if err := r.nodes[old].el.Relinquish(bg, "a"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("a new leader of a", func() bool {
		ls := r.leaders("a")
		return len(ls) == 1 && ls[0] != old
	})
	// The relinquished node rejoins and follows.
	err := r.nodes[old].drv.Do(func(n *replica.Node, now time.Time) error { return n.Rejoin(bg, now, "a") })
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("every node follows one leader per channel", func() bool { return r.settled(ids(3)...) })
	r.noDualLeader()
}

// etcd unreachable at start: a clear error, and the node leads nothing.
func TestUnreachableAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Close() }()
	n, err := replica.NewNode(replica.Config{ID: 1, External: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(bg, time.Now(), replica.ChannelConfig{Name: "a", Replicas: ids(2)}); err != nil {
		t.Fatal(err)
	}
	tr, _ := replica.NewMemNetwork().Join(1, 0)
	defer func() { _ = tr.Close() }()
	d := replica.NewDriver(n, tr, replica.DriverOptions{})
	_, err = New(bg, Config{Client: cli, TTL: 3 * time.Second, RequestTimeout: 300 * time.Millisecond}, d)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("New: %v, want ErrUnreachable naming %s", err, addr)
	}
	if got := n.Coordinator("a").Role(); got != rolefsm.Replica {
		t.Errorf("the channel is %v, want a Replica with no leader", got)
	}
}

func TestConfigErrors(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Close() }()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no etcd client"},
		{Config{Client: cli, TTL: time.Second}, "TTL 1s, want whole seconds, 2s or more"},
		{Config{Client: cli, TTL: 2500 * time.Millisecond}, "TTL 2.5s"},
		{Config{Client: cli, RenewEvery: 10 * time.Second}, "RenewEvery 10s, want above 0 and below the TTL 10s"},
		{Config{Client: cli, RenewEvery: -1}, "RenewEvery -1ns"},
		{Config{Client: cli, Margin: 7 * time.Second}, "Margin 7s, want above 0 and below TTL − RenewEvery (6.5s)"},
		{Config{Client: cli, Margin: -1}, "Margin -1ns"},
		{Config{Client: cli, RequestTimeout: 4 * time.Second}, "RequestTimeout 4s, want above 0 and at most RenewEvery 3.5s"},
		{Config{Client: cli, Resync: -1}, "Resync -1ns, want above 0"},
	} {
		_, err := New(bg, tc.cfg, nil)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrBadConfig with %q", tc.cfg, err, tc.want)
		}
	}
	_, err = New(bg, Config{Client: cli}, nil)
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "no driver") {
		t.Errorf("no driver: %v", err)
	}
	n, _ := replica.NewNode(replica.Config{ID: 1}, time.Now())
	tr, _ := replica.NewMemNetwork().Join(1, 0)
	defer func() { _ = tr.Close() }()
	_, err = New(bg, Config{Client: cli}, replica.NewDriver(n, tr, replica.DriverOptions{}))
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "External is off") {
		t.Errorf("a node with its own elections: %v", err)
	}
	var c Config
	c.Client = cli
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	if c.Prefix != DefaultPrefix || c.TTL != 10*time.Second || c.RenewEvery != 3500*time.Millisecond || c.Margin != 2*time.Second ||
		c.RequestTimeout != 2*time.Second || c.Resync != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	// etcd's client's cadence: TTL/3, rounded up to a half second.
	for ttl, want := range map[time.Duration]time.Duration{2 * time.Second: time.Second, 3 * time.Second: time.Second, 4 * time.Second: 1500 * time.Millisecond} {
		c := Config{Client: cli, TTL: ttl}
		if err := c.fill(); err != nil || c.RenewEvery != want {
			t.Errorf("TTL %v: RenewEvery %v (%v), want %v", ttl, c.RenewEvery, err, want)
		}
	}
}

// Leave hands every channel over at once: the node relinquishes and
// closes them, and its session is revoked, so the other node leads
// without waiting for a TTL.
func TestLeaveHandsEverythingOver(t *testing.T) {
	r := newRig(t, 1, "a", "b")
	r.cfg.TTL = 60 * time.Second
	one := r.add(1, ids(2), r.etcd.Endpoints(), false)
	r.start(one)
	r.waitFor("node 1 leads", func() bool { return r.settled(1) })
	r.start(r.add(2, ids(2), r.etcd.Endpoints(), false))
	r.waitFor("node 2 follows node 1", func() bool { return r.settled(1, 2) })
	lease := clientv3.LeaseID(one.el.lease.Load())
	if err := one.el.Leave(bg); err != nil {
		t.Fatal(err)
	}
	for _, ch := range r.channels {
		if got := r.role(1, ch); got != rolefsm.Idle {
			t.Errorf("%s: node 1 is %v after Leave", ch, got)
		}
		if _, ok := one.el.Token(ch); ok {
			t.Errorf("%s: node 1 kept its token", ch)
		}
	}
	ttl, err := one.cli.TimeToLive(bg, lease)
	if err != nil || ttl.TTL != -1 {
		t.Errorf("node 1's session after Leave: %+v, %v; want it revoked", ttl, err)
	}
	r.waitFor("node 2 leads every channel", func() bool { return r.settled(2) })
	r.noDualLeader()
}
