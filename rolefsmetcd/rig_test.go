package rolefsmetcd

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmetcd/etcdtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// etcd's embedded server and client start these once per
		// process and never stop them.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		// The members of a three-member cluster talk over HTTP
		// (rafthttp); closing a member leaves its peers' idle HTTP
		// connections to wind down. rolefsmetcd itself uses no HTTP.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).backgroundRead"),
	)
}

// rig is a cluster of replica nodes on an in-memory network, each
// campaigning through its own etcd client in a real etcd.
type rig struct {
	t        *testing.T
	etcd     *etcdtest.Cluster
	net      *replica.MemNetwork
	channels []string
	cfg      Config // the template of every node's elector config

	mu     sync.Mutex
	nodes  map[replica.NodeID]*rnode
	coords map[replica.NodeID]map[string]*rolefsm.Coordinator
	faults []string // a node took office while another held it, or without a token
}

type rnode struct {
	id     replica.NodeID
	node   *replica.Node
	drv    *replica.Driver
	tr     *replica.MemTransport
	cli    *clientv3.Client
	proxy  proxy.Server // between the node and etcd, if asked for
	el     *Elector
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// poll bounds every wait: conditions on real etcd and real time are
// polled every 20 ms, for up to poll (not a timing claim: a failure
// means the condition never came).
const poll = 30 * time.Second

func newRig(t *testing.T, members int, channels ...string) *rig {
	t.Helper()
	c, err := etcdtest.Start(t.TempDir(), members)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &rig{
		t: t, etcd: c, net: replica.NewMemNetwork(), channels: channels,
		cfg:    Config{TTL: 2 * time.Second},
		nodes:  make(map[replica.NodeID]*rnode),
		coords: make(map[replica.NodeID]map[string]*rolefsm.Coordinator),
	}
}

// add creates node id, holding every channel with replica set ids,
// with a client to endpoints (through a proxy it can cut, if
// viaProxy). It does not start it.
func (r *rig) add(id replica.NodeID, ids []replica.NodeID, endpoints []string, viaProxy bool) *rnode {
	t := r.t
	t.Helper()
	hb, err := policy.NewHeartbeat(100*time.Millisecond, 3)
	if err != nil {
		t.Fatal(err)
	}
	n, err := replica.NewNode(replica.Config{ID: id, Heartbeat: hb, External: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rn := &rnode{id: id, node: n}
	r.mu.Lock()
	r.coords[id] = make(map[string]*rolefsm.Coordinator)
	r.mu.Unlock()
	for _, ch := range r.channels {
		err := n.Open(context.Background(), time.Now(), replica.ChannelConfig{Name: ch, Replicas: ids,
			Options: []rolefsm.Option{rolefsm.WithObserver(r.observe(id, ch))}})
		if err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		r.coords[id][ch] = n.Coordinator(ch)
		r.mu.Unlock()
	}
	if viaProxy {
		port, err := etcdtest.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		from := url.URL{Scheme: "tcp", Host: fmt.Sprintf("127.0.0.1:%d", port[0])}
		to := url.URL{Scheme: "tcp", Host: endpoints[0]}
		p := proxy.NewServer(proxy.ServerConfig{Logger: zap.NewNop(), From: from, To: to})
		<-p.Ready()
		t.Cleanup(func() { _ = p.Close() })
		rn.proxy = p
		endpoints = []string{from.Host}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	rn.cli = cli
	rn.tr, err = r.net.Join(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	rn.drv = replica.NewDriver(n, rn.tr, replica.DriverOptions{})
	r.mu.Lock()
	r.nodes[id] = rn
	r.mu.Unlock()
	return rn
}

// observe checks, on every commit into Leader, that no other node
// holds Leader on the channel at that instant, and that the node's
// elector already offers the term's token to its observers.
func (r *rig) observe(id replica.NodeID, ch string) rolefsm.Observer {
	return func(_ context.Context, rec rolefsm.Record) {
		if rec.Err != nil || rec.To != rolefsm.Leader {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if rn := r.nodes[id]; rn != nil && rn.el != nil {
			if _, ok := rn.el.Token(ch); !ok {
				r.faults = append(r.faults, fmt.Sprintf("%s: node %d took office with no token to read", ch, id))
			}
		}
		for other, cs := range r.coords {
			if other != id && cs[ch] != nil && cs[ch].Role() == rolefsm.Leader {
				r.faults = append(r.faults, fmt.Sprintf("%s: node %d took office while node %d held it", ch, id, other))
			}
		}
	}
}

// start creates the node's elector and runs it with its driver until
// the test ends (or stop).
func (r *rig) start(rn *rnode) {
	t := r.t
	t.Helper()
	cfg := r.cfg
	cfg.Client = rn.cli
	el, err := New(context.Background(), cfg, rn.drv)
	if err != nil {
		t.Fatal(err)
	}
	rn.el = el
	ctx, cancel := context.WithCancel(context.Background())
	rn.cancel = cancel
	rn.done.Go(func() { _ = rn.drv.Run(ctx) })
	rn.done.Go(func() { _ = el.Run(ctx) })
	t.Cleanup(rn.stop)
}

func (rn *rnode) stop() {
	if rn.cancel != nil {
		rn.cancel()
		rn.done.Wait()
		_ = rn.tr.Close()
		rn.cancel = nil
	}
}

// role returns node id's role on ch.
func (r *rig) role(id replica.NodeID, ch string) rolefsm.Role {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.coords[id][ch].Role()
}

// leaders returns the nodes that hold Leader on ch.
func (r *rig) leaders(ch string) []replica.NodeID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []replica.NodeID
	for id, cs := range r.coords {
		if cs[ch].Role() == rolefsm.Leader {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// status returns node id's status of ch.
func (r *rig) status(rn *rnode, ch string) replica.Status {
	var st replica.Status
	_ = rn.drv.Do(func(n *replica.Node, _ time.Time) error {
		var err error
		st, err = n.Status(ch)
		return err
	})
	return st
}

// settled reports whether every channel has one leader among the
// running nodes ids, which every other of them follows.
func (r *rig) settled(ids ...replica.NodeID) bool {
	for _, ch := range r.channels {
		ls := r.leaders(ch)
		if len(ls) != 1 || !slices.Contains(ids, ls[0]) {
			return false
		}
		for _, id := range ids {
			if id != ls[0] && r.status(r.nodes[id], ch).Leader != ls[0] {
				return false
			}
		}
	}
	return true
}

// fenced checks that channel's new term, led by the one leader it has,
// holds a token above old, the previous term's, and that a write
// guarded by old is refused at etcd while one guarded by the new passes.
func (r *rig) fenced(channel string, old Token) {
	r.t.Helper()
	l := r.nodes[r.leaders(channel)[0]]
	tok, ok := l.el.Token(channel)
	if !ok || tok.Revision <= old.Revision {
		r.t.Errorf("%s: the new term's token %v (%t) is not above the old %v", channel, tok, ok, old)
	}
	resp, err := l.cli.Txn(bg).If(old.Guard()).Then(clientv3.OpPut("/store/"+channel, "stale")).Commit()
	if err != nil || resp.Succeeded {
		r.t.Errorf("%s: the old leader's write passed the fence (%v)", channel, err)
	}
	resp, err = l.cli.Txn(bg).If(tok.Guard()).Then(clientv3.OpPut("/store/"+channel, "fresh")).Commit()
	if err != nil || !resp.Succeeded {
		r.t.Errorf("%s: the new leader's write was fenced off (%v)", channel, err)
	}
}

func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(poll)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("not within %v: %s", poll, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) noDualLeader() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.faults {
		r.t.Error(d)
	}
}

func ids(n int) []replica.NodeID {
	var s []replica.NodeID
	for i := 1; i <= n; i++ {
		s = append(s, replica.NodeID(i))
	}
	return s
}
