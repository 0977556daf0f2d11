package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/replica"
)

// node builds one node's status: its channels as "name:Role:leader",
// its peers as heard (healthy) or not.
func fakeNode(id replica.NodeID, channels []string, heard map[replica.NodeID]bool, authFailures uint64) *nodeStatus {
	st := &nodeStatus{ID: id}
	for _, c := range channels {
		f := strings.Split(c, ":")
		var leader replica.NodeID
		if f[2] != "0" {
			leader = replica.NodeID(f[2][0] - '0')
		}
		st.Channels = append(st.Channels, channelStatus{Name: f[0], Role: f[1], Leader: leader})
	}
	for p := replica.NodeID(1); p <= 3; p++ {
		if p == id {
			continue
		}
		ps := peerStatus{ID: p, Addr: "127.0.0.1:700" + string(rune('0'+p)), Heard: heard[p], Healthy: heard[p]}
		if p == 3 {
			ps.AuthFailures = authFailures
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

// TestStatusVerdicts: the table and the problems, for a cluster that
// agrees and for one that does not in every way the command knows.
func TestStatusVerdicts(t *testing.T) {
	all := map[replica.NodeID]bool{1: true, 2: true, 3: true}
	var out bytes.Buffer
	v := judge([]nodeAnswer{
		{Addr: "n1:8001", Status: fakeNode(1, []string{"orders:Leader:1", "payments:Replica:2"}, all, 0)},
		{Addr: "n2:8002", Status: fakeNode(2, []string{"orders:Replica:1", "payments:Leader:2"}, all, 0)},
		{Addr: "n3:8003", Status: fakeNode(3, []string{"orders:Replica:1", "payments:Replica:2"}, all, 0)},
	})
	v.render(&out)
	assert.Equal(t, `CHANNEL   NODE 1     NODE 2     NODE 3     VERDICT
orders    Leader     Replica→1  Replica→1  ok: 1 leads
payments  Replica→2  Leader     Replica→2  ok: 2 leads

node 1 at n1:8001: 2 channels, 2 peers
node 2 at n2:8002: 2 channels, 2 peers
node 3 at n3:8003: 2 channels, 2 peers
no problem: every channel has one leader that the others follow, and every node is heard
`, out.String())
	assert.Empty(t, v.Problems)

	// Node 3 is down and nobody hears it; node 1 and 2 both lead
	// orders; payments has no leader; users is followed apart; node 1
	// drops datagrams from node 3's address as forgeries.
	out.Reset()
	v = judge([]nodeAnswer{
		{Addr: "n1:8001", Status: fakeNode(1, []string{"orders:Leader:1", "payments:Candidate:0", "users:Replica:2", "logs:Leader:1"},
			map[replica.NodeID]bool{2: true}, 7)},
		{Addr: "n2:8002", Status: fakeNode(2, []string{"orders:Leader:2", "payments:Replica:0", "users:Leader:2", "logs:Replica:3"},
			map[replica.NodeID]bool{1: true}, 0)},
		{Addr: "n3:8003", Error: "unreachable: dial tcp 127.0.0.1:8003: connect: connection refused"},
	})
	v.render(&out)
	assert.Equal(t, `CHANNEL   NODE 1     NODE 2     VERDICT
orders    Leader     Leader     TWO LEADERS: 1, 2
payments  Candidate  Replica    NO LEADER
users     Replica→2  Leader     ok: 2 leads
logs      Leader     Replica→3  1 leads; others follow 3

node 1 at n1:8001: 4 channels, 2 peers
node 2 at n2:8002: 4 channels, 2 peers
6 problems:
  n3:8003: unreachable: dial tcp 127.0.0.1:8003: connect: connection refused
  orders: TWO LEADERS: 1, 2
  payments: NO LEADER
  logs: 1 leads; others follow 3
  node 1: 7 datagrams from node 3's address 127.0.0.1:7003 failed authentication (another cluster's key, or a key not configured)
  node 3: heard by no node that answered (down, or unreachable at its address)
`, out.String())
}

// TestStatusCommand: the command over HTTP: exit 0 for a cluster in
// agreement, 1 with a problem, JSON on request, usage errors.
func TestStatusCommand(t *testing.T) {
	all := map[replica.NodeID]bool{1: true, 2: true, 3: true}
	serve := func(st *nodeStatus) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/status" {
				http.NotFound(w, r)
				return
			}
			_ = json.NewEncoder(w).Encode(st)
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	a := serve(fakeNode(1, []string{"orders:Leader:1"}, all, 0))
	b := serve(fakeNode(2, []string{"orders:Replica:1"}, all, 0))
	c := serve(fakeNode(3, []string{"orders:Replica:1"}, all, 0))
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, statusCommand(context.Background(), []string{a, b, "http://" + c}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "orders   Leader  Replica→1  Replica→1  ok: 1 leads\n")
	assert.Contains(t, out.String(), "1 channel, 2 peers\n")

	notNode := httptest.NewServer(http.NotFoundHandler())
	defer notNode.Close()
	out.Reset()
	require.Equal(t, exitRejected, statusCommand(context.Background(), []string{"-format", "json", a, strings.TrimPrefix(notNode.URL, "http://")}, &out, &errOut))
	var v statusView
	require.NoError(t, json.Unmarshal(out.Bytes(), &v))
	require.Len(t, v.Nodes, 2)
	assert.Equal(t, "GET /status: 404 Not Found", v.Nodes[1].Error)
	assert.Equal(t, []replica.NodeID{1}, v.Channels[0].Leaders)
	assert.True(t, v.Channels[0].OK)

	// -watch redraws (home, clear) until its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{n: 2, cancel: cancel}
	require.Equal(t, exitOK, statusCommand(ctx, []string{"-watch", "100ms", a, b, c}, w, &errOut))
	assert.Equal(t, 2, strings.Count(w.String(), "\x1b[H\x1b[2J"), "two redraws, then the context ended")
	assert.Equal(t, 2, strings.Count(w.String(), "ok: 1 leads"))

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "give the nodes' -http addresses, HOST:PORT"},
		{[]string{"nowhere"}, `"nowhere" is not HOST:PORT`},
		{[]string{"-format", "yaml", a}, `-format "yaml": want table or json`},
		{[]string{"-watch", "10ms", a}, "-watch 10ms: 0, or at least 100ms"},
		{[]string{"-timeout", "0s", a}, "-timeout 0s: above 0"},
	} {
		errOut.Reset()
		assert.Equal(t, exitUsage, statusCommand(context.Background(), tc.args, &out, &errOut), "%v", tc.args)
		assert.Equal(t, "rolefsm status: "+tc.msg+"\nrun \"rolefsm status -h\" for its usage\n", errOut.String())
	}
}

// TestStatusOfNodeProcessesDuringAFailover: rolefsm status against three
// real node processes: in agreement; with the leader SIGKILLed, the
// dead node unreachable and, once the others elect, the channels led by
// a survivor while nobody hears the dead node; with the node restarted,
// no problem again.
func TestStatusOfNodeProcessesDuringAFailover(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders,payments", "-heartbeat", "100ms", "-miss", "3")
	// Alone, node 1 serves (/healthz) but is not ready (/readyz), and
	// says why.
	c.start(1)
	body, err := c.get(1, "/healthz")
	require.NoError(t, err)
	assert.Equal(t, "ok\n", string(body))
	resp, err := http.Get("http://" + c.Procs[1].HTTP + "/readyz")
	require.NoError(t, err)
	why, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, string(why), "not ready: no peer healthy: none heard lately (of 2)")
	c.start(2)
	c.start(3)
	all := []replica.NodeID{1, 2, 3}
	leaders := c.settle(all...)
	c.await("every node ready", func() bool {
		for _, id := range all {
			if body, err := c.get(id, "/readyz"); err != nil || string(body) != "ready\n" {
				return false
			}
		}
		return true
	})
	http := map[replica.NodeID]string{} // a killed node's address is asked all the same
	addrs := func() []string {
		var as []string
		for _, id := range all {
			if p := c.Procs[id]; p != nil {
				http[id] = p.HTTP
			}
			as = append(as, http[id])
		}
		return as
	}
	view := func() (int, string) {
		var out, errOut bytes.Buffer
		code := statusCommand(context.Background(), addrs(), &out, &errOut)
		return code, out.String()
	}
	code, out := view()
	require.Equal(t, exitOK, code, out)
	t.Logf("rolefsm status, settled:\n%s", out)

	killed := leaders["orders"]
	c.signal(killed, syscall.SIGKILL)
	code, out = view()
	assert.Equal(t, exitRejected, code)
	assert.Contains(t, out, http[killed]+": unreachable: ")
	t.Logf("rolefsm status, the leader killed:\n%s", out)
	var survivors []replica.NodeID
	for _, id := range all {
		if id != killed {
			survivors = append(survivors, id)
		}
	}
	c.settle(survivors...)
	c.await("nobody hears the dead node", func() bool {
		_, out = view()
		return strings.Contains(out, "heard by no node that answered (down, or unreachable at its address)")
	})
	assert.NotContains(t, out, "TWO LEADERS")
	assert.NotContains(t, out, "NO LEADER")
	t.Logf("rolefsm status, after the failover:\n%s", out)

	c.start(killed)
	c.settle(all...)
	c.await("no problem again", func() bool {
		code, out = view()
		return code == exitOK
	})
	t.Logf("rolefsm status, the node back:\n%s", out)
}

// cancelAfter is a writer that cancels a context once it has seen n
// redraws.
type cancelAfter struct {
	bytes.Buffer
	n      int
	cancel context.CancelFunc
	marker string // what counts as a redraw; "ok: 1 leads" if empty
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	marker := w.marker
	if marker == "" {
		marker = "ok: 1 leads"
	}
	if strings.Count(w.String(), marker) >= w.n {
		w.cancel()
	}
	return n, err
}

// TestStatusRefusesHostileAnswers: what a node answers is shown, never
// obeyed or believed blindly: a name that carries terminal escapes is
// printed escaped, answers no rolefsm node gives are refused, two
// answers with one id are reported, and a redirect is not followed.
func TestStatusRefusesHostileAnswers(t *testing.T) {
	all := map[replica.NodeID]bool{1: true, 2: true, 3: true}
	serveBody := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	serve := func(st *nodeStatus) string {
		return serveBody(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(st) })
	}
	evil := fakeNode(1, []string{"orders:Leader:1"}, all, 0)
	evil.Channels[0].Name = "orders\x1b]0;pwned\x07\tNODE 9"
	a := serve(evil)
	b := serve(fakeNode(2, []string{"orders:Replica:1"}, all, 0))
	twin := serve(fakeNode(2, []string{"orders:Replica:1"}, all, 0))
	empty := serveBody(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })
	emperor := fakeNode(3, []string{"orders:Emperor:3"}, all, 0)
	bad := serve(emperor)
	away := serveBody(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+b+"/status", http.StatusFound)
	})

	var out, errOut bytes.Buffer
	code := statusCommand(context.Background(), []string{a, b, twin, empty, bad, away}, &out, &errOut)
	assert.Equal(t, exitRejected, code)
	got := out.String()
	assert.NotContains(t, got, "\x1b", "no escape reaches the terminal")
	assert.NotContains(t, got, "\x07")
	assert.Contains(t, got, `orders\x1b]0;pwned\a\tNODE 9`)
	assert.Contains(t, got, b+" and "+twin+" both answer as node 2")
	assert.Contains(t, got, empty+": GET /status: not a rolefsm node's status: no node id")
	assert.Contains(t, got, bad+`: GET /status: not a rolefsm node's status: channel "orders" with role "Emperor"`)
	assert.Contains(t, got, away+": GET /status: 302 Found")

	// -watch in JSON writes JSON only: no redraw codes.
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{n: 1, cancel: cancel, marker: `"leaders"`}
	statusCommand(ctx, []string{"-format", "json", "-watch", "100ms", b}, w, &errOut)
	assert.NotContains(t, w.String(), "\x1b")
}
