package rolefsmetcd

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// The step-down deadline: TTL − margin after the send of the latest
// keep-alive that succeeded, never after a later send's.
func TestValidity(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := validity{ttl: 10 * time.Second, margin: 2 * time.Second}
	if _, ok := v.until(); ok || v.valid(t0) {
		t.Fatal("valid before any grant")
	}
	v.renewed(t0, 10*time.Second)
	u, ok := v.until()
	if !ok || !u.Equal(t0.Add(8*time.Second)) {
		t.Fatalf("until %v, want 8 s after the send", u)
	}
	if !v.valid(t0.Add(8*time.Second-1)) || v.valid(t0.Add(8*time.Second)) {
		t.Error("valid must end exactly at TTL − margin")
	}
	// A reply to an earlier send, arriving late, moves nothing back.
	v.renewed(t0.Add(3*time.Second), 10*time.Second)
	v.renewed(t0.Add(time.Second), 10*time.Second)
	if u, _ := v.until(); !u.Equal(t0.Add(11 * time.Second)) {
		t.Errorf("until %v, want 11 s after t0", u)
	}
	// A server that grants less than asked is believed.
	v.renewed(t0.Add(5*time.Second), 4*time.Second)
	if u, _ := v.until(); !u.Equal(t0.Add(11 * time.Second)) {
		t.Errorf("until %v after a shorter grant, want 11 s (5 + 4 − 2 is earlier, the later stands)", u)
	}
	w := validity{ttl: 10 * time.Second, margin: 2 * time.Second}
	w.renewed(t0, 4*time.Second)
	if u, _ := w.until(); !u.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("until %v after a 4 s grant, want 2 s", u)
	}
	v.lost()
	if v.valid(t0) {
		t.Error("valid after the lease was lost")
	}
}

func TestViewKeys(t *testing.T) {
	v := newView("/p")
	if k := v.key("a/b", 0x2a); k != "/p/a/b/2a" {
		t.Errorf("key %q", k)
	}
	for key, want := range map[string]struct {
		ch    string
		lease int64
		ok    bool
	}{
		"/p/a/2a":                 {"a", 0x2a, true},
		"/p/a/b/2a":               {"a/b", 0x2a, true},
		"/q/a/2a":                 {},
		"/p/2a":                   {},
		"/p//2a":                  {},
		"/p/a/zz":                 {},
		"/p/a/0":                  {},
		"/p/a/":                   {},
		"/p/a/-1":                 {},
		"/p/a/ffffffffffffffffff": {},
	} {
		ch, lease, ok := v.parse(key)
		if ch != want.ch || lease != want.lease || ok != want.ok {
			t.Errorf("parse(%q) = %q, %x, %t; want %+v", key, ch, lease, ok, want)
		}
	}
	v.put(&mvccpb.KeyValue{Key: []byte("/p/a/2"), CreateRevision: 9, Value: []byte("2")})
	v.put(&mvccpb.KeyValue{Key: []byte("/p/a/1"), CreateRevision: 7, Value: []byte("node one")})
	v.put(&mvccpb.KeyValue{Key: []byte("/p/junk"), CreateRevision: 1, Value: []byte("1")})
	if l, c, ok := v.leader("a", 0); !ok || l != 1 || c.created != 7 || c.node != 0 {
		t.Errorf("leader %x %+v %t: want lease 1, revision 7, no node named", l, c, ok)
	}
	if l, _, ok := v.leader("a", 1); !ok || l != 2 {
		t.Errorf("leader leaving lease 1 out (known deleted): %x %t, want lease 2", l, ok)
	}
	v.del([]byte("/p/a/1"))
	if l, c, ok := v.leader("a", 0); !ok || l != 2 || c.node != replica.NodeID(2) {
		t.Errorf("leader after delete: %x %+v %t", l, c, ok)
	}
	v.del([]byte("/p/a/2"))
	if _, _, ok := v.leader("a", 0); ok || len(v.chans) != 0 {
		t.Errorf("a leader with no key: %v", v.chans)
	}
}

// TestReady: ready only on a session the node may act on, by the
// elector's clock.
func TestReady(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := &Elector{cfg: Config{TTL: 10 * time.Second, Margin: 2 * time.Second, Now: func() time.Time { return now }}}
	e.valid = validity{ttl: e.cfg.TTL, margin: e.cfg.Margin}
	err := e.Ready()
	if !errors.Is(err, ErrNoSession) || err.Error() != "rolefsmetcd: no etcd session: none granted" {
		t.Fatalf("before a grant: %v", err)
	}
	e.lease.Store(0x2a)
	e.valid.renewed(now, e.cfg.TTL)
	if err := e.Ready(); err != nil {
		t.Fatalf("just granted: %v", err)
	}
	now = now.Add(8 * time.Second)
	if err := e.Ready(); !errors.Is(err, ErrNoSession) || !strings.Contains(err.Error(), "within TTL − Margin (8s)") {
		t.Fatalf("8 s after the last keep-alive's send: %v", err)
	}
}

func TestTokenString(t *testing.T) {
	if got := (Token{Key: "/p/a/2a", Revision: 7}).String(); got != "/p/a/2a@7" {
		t.Errorf("String() = %q", got)
	}
}

// TestWatchdogStepsDownAtTheDeadline: on the elector's clock, a leader
// stays in office until TTL − Margin after the latest keep-alive's
// send, and leaves it (PeerLeaderObserved, counted) at that instant: no
// etcd, a fake clock.
func TestWatchdogStepsDownAtTheDeadline(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	n, err := replica.NewNode(replica.Config{ID: 1, External: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Open(ctx, t0, replica.ChannelConfig{Name: "orders", Replicas: []replica.NodeID{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := n.Stand(ctx, t0, "orders"); err != nil {
		t.Fatal(err)
	}
	if err := n.Elected(ctx, t0, "orders", 1); err != nil {
		t.Fatal(err)
	}
	e := &Elector{cfg: Config{Now: func() time.Time { return now }}, d: replica.NewDriver(n, nil, replica.DriverOptions{}),
		valid: validity{ttl: 10 * time.Second, margin: 2 * time.Second}, kick: make(chan struct{}, 1), tokens: map[string]Token{}}
	e.valid.renewed(t0, 10*time.Second)
	role := func() rolefsm.Role { return n.Coordinator("orders").Role() }
	now = t0.Add(8*time.Second - time.Nanosecond)
	e.stepDownAll(ctx, true)
	if role() != rolefsm.Leader {
		t.Fatalf("%v before the deadline", role())
	}
	now = t0.Add(8 * time.Second)
	e.stepDownAll(ctx, true)
	if role() != rolefsm.Replica || e.Stats().StepDowns != 1 {
		t.Fatalf("%v and %d step-downs at the deadline", role(), e.Stats().StepDowns)
	}
}

// A keep-alive stream's responses: each answers the oldest request not
// yet answered, and the session counts from that request's send; a
// response for another lease, or with none outstanding, ends the
// stream; TTL 0 (expired at the server) drops the session.
func TestKeepAliveResponses(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	e := &Elector{valid: validity{ttl: 10 * time.Second, margin: 2 * time.Second}, changed: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), cfg: Config{Now: func() time.Time { return now }}}
	e.lease.Store(7)
	ka := &kaStream{pending: []kaRequest{{lease: 7, sent: t0}, {lease: 7, sent: t0.Add(3 * time.Second)}}}
	if err := e.answered(ka, kaReply{resp: &pb.LeaseKeepAliveResponse{ID: 7, TTL: 10}}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.valid.until(); !u.Equal(t0.Add(8 * time.Second)) {
		t.Errorf("until %v, want 8 s after the first send: the first response answers the first request", u)
	}
	if len(ka.pending) != 1 {
		t.Fatalf("%d requests outstanding, want 1", len(ka.pending))
	}
	select {
	case <-e.kick:
	default:
		t.Error("a session valid again must start a pass")
	}
	// Still valid after the next renewal: no pass for it.
	now = t0.Add(time.Second)
	if err := e.answered(ka, kaReply{resp: &pb.LeaseKeepAliveResponse{ID: 7, TTL: 10}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.kick:
		t.Error("a renewal of a valid session started a pass")
	default:
	}
	ka.pending = []kaRequest{{lease: 7, sent: t0.Add(3 * time.Second)}}
	if err := e.answered(ka, kaReply{resp: &pb.LeaseKeepAliveResponse{ID: 8, TTL: 10}}); err == nil || !strings.Contains(err.Error(), "lease 8 to a request for 7") {
		t.Errorf("a response for another lease: %v", err)
	}
	if err := e.answered(ka, kaReply{resp: &pb.LeaseKeepAliveResponse{ID: 7, TTL: 10}}); err == nil || !strings.Contains(err.Error(), "no request outstanding") {
		t.Errorf("an unasked response: %v", err)
	}
	if u, _ := e.valid.until(); !u.Equal(t0.Add(11 * time.Second)) {
		t.Errorf("until %v: a refused response moved it (want 8 s after the second send)", u)
	}
	if err := e.answered(ka, kaReply{err: errors.New("stream reset")}); err == nil {
		t.Error("a stream error must end the stream")
	}
	ka.pending = []kaRequest{{lease: 7, sent: t0.Add(5 * time.Second)}}
	if err := e.answered(ka, kaReply{resp: &pb.LeaseKeepAliveResponse{ID: 7, TTL: 0}}); err != nil {
		t.Fatal(err)
	}
	if e.lease.Load() != 0 || e.valid.valid(t0) {
		t.Error("an expired lease must drop the session")
	}
}

// Each answered keep-alive adds its round trip, from the request's send
// to the answer's arrival, to Stats; a refused response adds nothing,
// and an expiry is an answer too.
func TestKeepAliveWaitCounted(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := &Elector{valid: validity{ttl: 10 * time.Second, margin: 2 * time.Second}, changed: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), cfg: Config{Now: func() time.Time { return t0 }}}
	e.lease.Store(7)
	ka := &kaStream{pending: []kaRequest{{lease: 7, sent: t0, at: t0}, {lease: 7, sent: t0, at: t0.Add(time.Second)}}}
	for _, r := range []kaReply{
		{resp: &pb.LeaseKeepAliveResponse{ID: 7, TTL: 10}, at: t0.Add(30 * time.Millisecond)},
		{resp: &pb.LeaseKeepAliveResponse{ID: 7, TTL: 0}, at: t0.Add(time.Second + 50*time.Millisecond)},
	} {
		if err := e.answered(ka, r); err != nil {
			t.Fatal(err)
		}
	}
	ka.pending = []kaRequest{{lease: 7, sent: t0, at: t0}}
	if err := e.answered(ka, kaReply{resp: &pb.LeaseKeepAliveResponse{ID: 8, TTL: 10}, at: t0.Add(time.Hour)}); err == nil {
		t.Fatal("a response for another lease was taken")
	}
	if st := e.Stats(); st.KeepAlivesAnswered != 2 || st.KeepAliveWait != 80*time.Millisecond {
		t.Errorf("%d answered, %v waited; want 2 and 80ms", st.KeepAlivesAnswered, st.KeepAliveWait)
	}
}

// A watch response marks the channels its events name, and the
// Candidates whose campaign the view has now reached: a pass campaigns
// in transactions of at most maxTxnOps and records the last one's
// revision for all, so the events of an earlier transaction arrive
// before the view has caught up with it.
func TestWatchEventsMarkTheirChannels(t *testing.T) {
	e := &Elector{view: newView("/p"), dirty: map[string]struct{}{}, cands: map[string]int64{"early": 7, "late": 9}}
	e.view.rev = 5
	e.applyEvents(clientv3.WatchResponse{Events: []*clientv3.Event{
		{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte("/p/early/2a"), Value: []byte("1"), CreateRevision: 6, ModRevision: 6}},
		{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{Key: []byte("/p/gone/2b"), ModRevision: 6}},
		{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte("/elsewhere/x"), ModRevision: 6}},
	}})
	if got := slices.Sorted(maps.Keys(e.dirty)); !slices.Equal(got, []string{"early", "gone"}) {
		t.Errorf("marked %v, want the events' channels", got)
	}
	clear(e.dirty)
	e.applyEvents(clientv3.WatchResponse{Events: []*clientv3.Event{
		{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte("/p/late/2a"), Value: []byte("1"), CreateRevision: 7, ModRevision: 7}},
	}})
	if got := slices.Sorted(maps.Keys(e.dirty)); !slices.Equal(got, []string{"early", "late"}) {
		t.Errorf("marked %v, want late (its event) and early (its campaign's revision reached)", got)
	}
	if e.view.rev != 7 {
		t.Errorf("view at %d, want 7", e.view.rev)
	}
}
