package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

func TestNodeRefusesBadCommandLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
		return path
	}
	key, err := udp.GenerateKey()
	require.NoError(t, err)
	good := write("good.key", key.String()+"\n")
	twoKeys := write("two.key", "# rotated in May\n"+key.String()+"\n"+key.String()+"\n")
	notBase64 := write("bad.key", "# rotated in May\nnot a key!\n")
	short := write("short.key", "AAAA\n")
	empty := write("empty.key", "# nothing yet\n\n")
	readable := filepath.Join(dir, "readable.key")
	require.NoError(t, os.WriteFile(readable, []byte(key.String()+"\n"), 0o644))
	require.NoError(t, os.Chmod(readable, 0o644)) // whatever the umask
	peerKey, err := udp.GenerateKey()
	require.NoError(t, err)
	pub, own := peerKey.Public().String(), key.Public().String()
	peersFile := write("peers", "# the cluster\n2 127.0.0.1:7002 "+pub+"\n\n3 127.0.0.1:7003\n")
	base := []string{"-id", "1", "-listen", "127.0.0.1:0", "-channels", "orders"}
	with := func(args ...string) []string { return append(slices.Clone(base), args...) }
	// etcd: the flags of -election etcd, with args after them.
	etcd := func(args ...string) []string {
		return append(with("-insecure", "-election", "etcd", "-etcd", "127.0.0.1:2379"), args...)
	}
	notPEM := write("ca.pem", "not a certificate\n")
	password := write("etcd.password", "s3cret\n")
	open := filepath.Join(dir, "open.password")
	require.NoError(t, os.WriteFile(open, []byte("s3cret\n"), 0o644))
	require.NoError(t, os.Chmod(open, 0o644)) // whatever the umask
	emptyPassword := write("empty.password", "\n")

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{with(), "no key: give -key-file (rolefsm keygen -out FILE makes one), or -insecure to run unauthenticated on purpose"},
		{with("-key-file", notBase64), "-key-file: bad key: line 2: not base64"},
		{with("-key-file", twoKeys), "line 3: a key file holds one key"},
		{with("-key-file", short), "line 1: 3 bytes, want 32"},
		{with("-key-file", empty), "the key file holds no key"},
		{with("-key-file", readable), "-key-file: key file readable by others: " + readable + " has mode 0644: chmod 600 " + readable},
		{with("-key-file", filepath.Join(dir, "nosuch")), "-key-file: open "},
		{with("-key-file", good, "-insecure"), "-key-file and -insecure: choose one"},
		{with("-insecure", "-admin"), "-admin: give -http to serve the handover on"},
		{with("-insecure", "-status-max-age", "-1s"), "-status-max-age -1s: 0 or more"},
		{etcd("-http", "127.0.0.1:0", "-admin"), "-admin: with -election etcd, etcd decides who leads"},
		{with("-insecure", "-evidence", "some"), `-evidence: bad configuration: evidence "some" (want peers, own or default)`},
		{with("-key-file", good, "-peers", "2=127.0.0.1:1"), `-peers: "2=127.0.0.1:1": no public key (rolefsm keygen prints it; rolefsm pubkey shows it again)`},
		{with("-key-file", good, "-peers", "2=127.0.0.1:1@AAAA"), `-peers: "2=127.0.0.1:1@AAAA": bad key: public key of 3 bytes, want 32`},
		{with("-key-file", good, "-peers", "2=127.0.0.1:1@"+pub+"@"+pub), "the same public key twice"},
		{with("-key-file", good, "-peers", "2=127.0.0.1:1@"+pub+"@"+own+"@"+pub), "3 public keys, at most 2"},
		{with("-key-file", good, "-peers", "2=127.0.0.1:1@"+own), "-peers: node 2 has this node's own public key"},
		{with("-key-file", good, "-peers", "2=nowhere@"+pub), `-peers: "2=nowhere@` + pub + `": "nowhere" is not HOST:PORT`},
		{with("-key-file", good, "-peers", "2=127.0.0.1:99999@"+pub), `-peers: "2=127.0.0.1:99999@` + pub + `": address 99999: invalid port`},
		{with("-key-file", good, "-peers", "2=127.0.0.1:0@"+pub), `-peers: "2=127.0.0.1:0@` + pub + `": port 0 is no peer's port`},
		{with("-key-file", good, "-peers", "2=[::1:7002@"+pub), `is not HOST:PORT`},
		{with("-insecure", "-peers", "2=127.0.0.1:1@"+pub), "a public key, but -insecure uses none"},
		{with("-key-file", good, "-peers-file", peersFile), "-peers-file " + peersFile + " line 4: \"3 127.0.0.1:7003\": no public key"},
		{with("-key-file", good, "-peers-file", filepath.Join(dir, "nosuch")), "-peers-file: open "},
		{with("-key-file", good, "-peers-file", peersFile, "-peers", "2=127.0.0.1:1@"+pub), "-peers and -peers-file: choose one"},
		{[]string{"-listen", "127.0.0.1:0", "-channels", "a", "-insecure"}, "-id: give this node's id, 1 or more"},
		{[]string{"-id", "1", "-channels", "a", "-insecure"}, "-listen: give the UDP address to listen on"},
		{with("-insecure", "-peers", "2"), `-peers: "2" is not ID=ADDR@PUBLICKEY`},
		{with("-insecure", "-peers", "x=127.0.0.1:1"), `-peers: "x=127.0.0.1:1": the id must be a number, 1 or more`},
		{with("-insecure", "-peers", "0=127.0.0.1:1"), `the id must be a number, 1 or more`},
		{with("-insecure", "-peers", "1=127.0.0.1:1"), `-peers: "1=127.0.0.1:1": that is this node's own id`},
		{with("-insecure", "-peers", "2=127.0.0.1:1,2=127.0.0.1:2"), "-peers: node 2 twice"},
		{[]string{"-id", "1", "-listen", "127.0.0.1:0", "-insecure"}, "no channel: give -channels or -channels-n"},
		{[]string{"-id", "1", "-listen", "127.0.0.1:0", "-insecure", "-channels", "a,,b"}, "-channels: an empty channel name"},
		{[]string{"-id", "1", "-listen", "127.0.0.1:0", "-insecure", "-channels", "a,b,a"}, `-channels: "a" twice`},
		{[]string{"-id", "1", "-listen", "127.0.0.1:0", "-insecure", "-channels", "ch00002", "-channels-n", "3"}, `-channels: "ch00002" twice`},
		{[]string{"-id", "1", "-listen", "127.0.0.1:0", "-insecure", "-channels", "_overflow"}, "reserved for the metrics' overflow"},
		{[]string{"-id", "1", "-listen", "127.0.0.1:0", "-insecure", "-channels", strings.Repeat("x", 256)}, "a name of 256 bytes, at most 255"},
		{with("-insecure", "-channels-n", "-1"), "-channels-n -1: from 0 to 1000000"},
		{with("-insecure", "-heartbeat", "10ms"), "-heartbeat 10ms: at least 100ms"},
		{with("-insecure", "-miss", "0"), "-miss 0: at least 2"},
		{with("-insecure", "-miss", "1"), "-miss 1: one late or lost heartbeat deposes a live leader"},
		{with("-insecure", "-policy", "fastest"), `-policy: unknown election policy "fastest" (want tail or upstream)`},
		{with("-insecure", "extra"), `unexpected argument "extra"`},
		{with("-insecure", "-election", "raft"), `-election "raft": heartbeat or etcd`},
		{with("-insecure", "-election", "etcd"), "-election etcd: give -etcd HOST:PORT"},
		{with("-insecure", "-etcd", "127.0.0.1:2379"), "-etcd: only with -election etcd"},
		{with("-insecure", "-election", "etcd", "-etcd", "127.0.0.1"), `-etcd: "127.0.0.1" is not HOST:PORT`},
		{with("-insecure", "-election", "etcd", "-etcd", "127.0.0.1:2379", "-etcd-ttl", "1s"), "-etcd-ttl 1s: whole seconds, 2s or more"},
		{with("-insecure", "-election", "etcd", "-etcd", "127.0.0.1:2379", "-etcd-ttl", "2500ms"), "-etcd-ttl 2.5s: whole seconds"},
		{with("-insecure", "-election", "etcd", "-etcd", "127.0.0.1:2379", "-etcd-prefix", "/x/"), `-etcd-prefix "/x/": not empty, no trailing /`},
		{with("-insecure", "-election", "etcd", "-etcd", "127.0.0.1:99999"), `-etcd: "127.0.0.1:99999" is not HOST:PORT, http://HOST:PORT or https://HOST:PORT`},
		{with("-insecure", "-election", "etcd", "-etcd", "127.0.0.1:2379,"), `-etcd: "" is not HOST:PORT`},
		{with("-insecure", "-election", "etcd", "-etcd", "https://127.0.0.1"), `-etcd: "https://127.0.0.1" is not HOST:PORT`},
		{with("-insecure", "-election", "etcd", "-etcd", "unix:///run/etcd.sock"), `-etcd: "unix:///run/etcd.sock": the scheme is unix, want http:// or https://`},
		{with("-insecure", "-election", "etcd", "-etcd", "https://root:pw@10.0.0.1:2379"), `-etcd: "https://root:pw@10.0.0.1:2379": want https://HOST:PORT and nothing more`},
		{with("-insecure", "-election", "etcd", "-etcd", "http://10.0.0.1:2379/v3"), `want http://HOST:PORT and nothing more`},
		{with("-insecure", "-election", "etcd", "-etcd", "https://10.0.0.1:2379,http://10.0.0.2:2379"),
			"-etcd: http://10.0.0.2:2379 and https://10.0.0.1:2379: http:// and https:// mixed"},
		{with("-insecure", "-election", "etcd", "-etcd", "http://10.0.0.1:2379", "-etcd-ca", notPEM),
			"-etcd: http://10.0.0.1:2379 is http:// (in the clear) but -etcd-ca asks for TLS: give https:// endpoints"},
		{with("-insecure", "-etcd-ca", notPEM), "-etcd-ca: only with -election etcd"},
		{with("-insecure", "-etcd-user", "node"), "-etcd-user: only with -election etcd"},
		{etcd("-etcd-ca", filepath.Join(dir, "nosuch")), "-etcd-ca: open "},
		{etcd("-etcd-ca", notPEM), "-etcd-ca " + notPEM + ": no PEM certificate in it"},
		{etcd("-etcd-cert", notPEM), "-etcd-cert and -etcd-key: give both (the client certificate and its key) or neither"},
		{etcd("-etcd-key", notPEM), "-etcd-cert and -etcd-key: give both"},
		{etcd("-etcd-cert", notPEM, "-etcd-key", notPEM), "-etcd-cert " + notPEM + ", -etcd-key " + notPEM + ": tls: "},
		{etcd("-etcd-user", "node"), "-etcd-user node: give its password in -etcd-password-file or $ROLEFSM_ETCD_PASSWORD"},
		{etcd("-etcd-password-file", password), "-etcd-password-file: give -etcd-user, whose password it holds"},
		{etcd("-etcd-user", "node", "-etcd-password-file", filepath.Join(dir, "nosuch")), "-etcd-password-file: open "},
		{etcd("-etcd-user", "node", "-etcd-password-file", open),
			"-etcd-password-file " + open + ": permissions 0644 are too open, group or others may read it: chmod 600 " + open},
		{etcd("-etcd-user", "node", "-etcd-password-file", emptyPassword), "-etcd-password-file " + emptyPassword + ": empty"},
	} {
		var stdout, stderr bytes.Buffer
		code := node(context.Background(), tc.args, &stdout, &stderr)
		assert.Equal(t, exitUsage, code, "%v", tc.args)
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if assert.Len(t, lines, 2, "%v: the error, then one line of help", tc.args) {
			assert.True(t, strings.HasPrefix(lines[0], "rolefsm node: "), "%v: %s", tc.args, lines[0])
			assert.Contains(t, lines[0], tc.msg, "%v", tc.args)
			assert.Equal(t, `run "rolefsm node -h" for its usage`, lines[1])
		}
		assert.Empty(t, stdout.String(), "%v: nothing started", tc.args)
	}

	// A flag set's own errors (an unknown flag, a bad value) name the
	// flag and what it wants, in the same two lines; -h prints the
	// whole usage.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-heartbeat", "500"}, `-heartbeat "500": want a duration such as 500ms or 2s`},
		{[]string{"-id", "-1"}, `-id "-1": want a whole number, 0 or more`},
		{[]string{"-miss", "x"}, `-miss "x": want a whole number`},
		{[]string{"-insecure=maybe"}, `-insecure "maybe": want true or false`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
	} {
		var stderr bytes.Buffer
		assert.Equal(t, exitUsage, node(context.Background(), tc.args, &bytes.Buffer{}, &stderr))
		assert.Equal(t, "rolefsm node: "+tc.msg+"\nrun \"rolefsm node -h\" for its usage\n", stderr.String())
	}
	var help bytes.Buffer
	assert.Equal(t, exitOK, node(context.Background(), []string{"-h"}, &bytes.Buffer{}, &help))
	assert.Contains(t, help.String(), "usage: rolefsm node")
	assert.Contains(t, help.String(), "-heartbeat duration")

	// The password from the environment: with -etcd-user only, and not
	// beside a password file.
	t.Setenv(etcdPasswordEnv, "s3cret")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{etcd(), "$ROLEFSM_ETCD_PASSWORD is set: give -etcd-user, whose password it is"},
		{etcd("-etcd-user", "node", "-etcd-password-file", password), "-etcd-password-file and $ROLEFSM_ETCD_PASSWORD: choose one"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, exitUsage, node(context.Background(), tc.args, &stdout, &stderr), "%v", tc.args)
		assert.Equal(t, "rolefsm node: "+tc.msg+"\nrun \"rolefsm node -h\" for its usage\n", stderr.String(), "%v", tc.args)
		assert.Empty(t, stdout.String())
	}
	cfg, code := parseNode(etcd("-etcd-user", "node"), &bytes.Buffer{})
	require.Equal(t, -1, code)
	assert.Equal(t, "s3cret", cfg.etcdConn.password)
	t.Setenv(etcdPasswordEnv, "")
	cfg, code = parseNode(etcd("-etcd-user", "node", "-etcd-password-file", password), &bytes.Buffer{})
	require.Equal(t, -1, code)
	assert.Equal(t, "s3cret", cfg.etcdConn.password, "the line end is not part of it")
	assert.Nil(t, cfg.etcdConn.tls, "HOST:PORT without a TLS flag: in the clear")
	cfg, code = parseNode(with("-insecure", "-election", "etcd", "-etcd", " https://10.0.0.1:2379/ , 10.0.0.2:2379"), &bytes.Buffer{})
	require.Equal(t, -1, code)
	assert.Equal(t, []string{"https://10.0.0.1:2379", "10.0.0.2:2379"}, cfg.etcd)
	assert.NotNil(t, cfg.etcdConn.tls, "https://: TLS, with the system's CAs")

	// -miss 1 only when asked for by name.
	cfg, code = parseNode(with("-insecure", "-miss", "1", "-allow-miss-1"), &bytes.Buffer{})
	require.Equal(t, -1, code)
	assert.Equal(t, 1, cfg.heartbeat.MissThreshold())

	// Policies are named without regard to case.
	_, code = parseNode(with("-insecure", "-policy", "UpStream"), &bytes.Buffer{})
	assert.Equal(t, -1, code)

	// The evidence rule: peers unless asked, own by name.
	cfg, code = parseNode(with("-insecure"), &bytes.Buffer{})
	require.Equal(t, -1, code)
	assert.Equal(t, replica.DefaultEvidence, cfg.evidence)
	cfg, code = parseNode(with("-insecure", "-evidence", "own"), &bytes.Buffer{})
	require.Equal(t, -1, code)
	assert.Equal(t, replica.OwnSilence, cfg.evidence)
}

// TestNodeHandsOverOnRequest: with -admin, POST
// /channels/NAME/relinquish hands a channel the node leads over (the
// others elect a leader without waiting out the timeout), and
// /channels/NAME/rejoin brings it back as a Replica; a channel it does
// not lead is a 409, one it does not hold a 404; without -admin there
// is no such endpoint.
func TestNodeHandsOverOnRequest(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders", "-heartbeat", "100ms", "-miss", "3")
	c.NodeArgs[1] = []string{"-admin"}
	c.NodeArgs[2] = []string{"-admin"}
	c.NodeArgs[3] = []string{"-admin"}
	for id := range c.UDP {
		c.start(id)
	}
	all := []replica.NodeID{1, 2, 3}
	leader := c.settle(all...)["orders"]
	follower := all[0]
	if follower == leader {
		follower = all[1]
	}
	post := func(id replica.NodeID, path string) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+c.Procs[id].HTTP+path, "text/plain", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, body := post(follower, "/channels/orders/relinquish")
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "not the leader")
	code, _ = post(leader, "/channels/nosuch/relinquish")
	assert.Equal(t, http.StatusNotFound, code)

	code, body = post(leader, "/channels/orders/relinquish")
	require.Equal(t, http.StatusOK, code, body)
	rest := slices.DeleteFunc(slices.Clone(all), func(id replica.NodeID) bool { return id == leader })
	next := c.settle(rest...)["orders"]
	assert.NotEqual(t, leader, next)
	st, err := c.status(leader)
	require.NoError(t, err)
	assert.Equal(t, "Idle", st.Channels[0].Role, "handed over: Idle until it rejoins")

	code, body = post(leader, "/channels/orders/rejoin")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, next, c.settle(all...)["orders"], "it rejoins as a Replica of the new leader")
}

// TestNodeWithoutAdminHasNoHandover: the endpoints exist only with
// -admin.
func TestNodeWithoutAdminHasNoHandover(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1}, "-channels", "orders")
	c.start(1)
	resp, err := http.Post("http://"+c.Procs[1].HTTP+"/channels/orders/relinquish", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// TestNodeCannotListen: an address already taken is a runtime failure,
// exit 1, and nothing is left running.
func TestNodeCannotListen(t *testing.T) {
	taken, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer taken.Close()
	var stderr bytes.Buffer
	code := node(context.Background(), []string{"-id", "1", "-listen", taken.LocalAddr().String(), "-channels", "a", "-insecure"}, &bytes.Buffer{}, &stderr)
	assert.Equal(t, exitRejected, code)
	assert.Contains(t, stderr.String(), "rolefsm node: listen udp "+taken.LocalAddr().String())

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcp.Close()
	stderr.Reset()
	code = node(context.Background(), []string{"-id", "1", "-listen", "127.0.0.1:0", "-channels", "a", "-insecure", "-http", tcp.Addr().String()}, &bytes.Buffer{}, &stderr)
	assert.Equal(t, exitRejected, code)
	assert.Contains(t, stderr.String(), "rolefsm node: listen tcp "+tcp.Addr().String())
}

// TestNodeProcessesFailOver runs three real node processes: they agree
// on one leader per channel; the node leading the most is killed
// (SIGKILL) and the other two agree on new leaders; restarted, it
// rejoins as a Replica everywhere; a leader stopped with SIGTERM exits
// 0 after leaving, and its audit log replays.
func TestNodeProcessesFailOver(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders,payments,users", "-heartbeat", "100ms", "-miss", "3")
	for id := range c.UDP {
		c.start(id)
	}
	all := []replica.NodeID{1, 2, 3}
	leaders := c.settle(all...)
	require.Len(t, leaders, 3)

	// /status has exactly the documented shape.
	body, err := c.get(1, "/status")
	require.NoError(t, err)
	var shape map[string]any
	require.NoError(t, json.Unmarshal(body, &shape))
	assert.ElementsMatch(t, []string{"id", "insecure", "public_key", "channels", "peers"}, keys(shape))
	assert.Equal(t, 1.0, shape["id"])
	assert.Equal(t, false, shape["insecure"])
	assert.Equal(t, c.Keys[1].Public().String(), shape["public_key"])
	first := shape["channels"].([]any)[0].(map[string]any)
	assert.ElementsMatch(t, []string{"name", "role", "generation", "leader", "tail"}, keys(first))
	assert.Equal(t, "orders", first["name"])

	killed := mostLeading(leaders)
	c.signal(killed, syscall.SIGKILL)
	survivors := slices.DeleteFunc(slices.Clone(all), func(id replica.NodeID) bool { return id == killed })
	after := c.settle(survivors...)
	for ch, id := range after {
		assert.NotEqual(t, killed, id, "channel %s", ch)
	}

	c.start(killed)
	rejoined := c.settle(all...)
	assert.Equal(t, after, rejoined, "the restarted node follows the leaders it finds")
	st, err := c.status(killed)
	require.NoError(t, err)
	for _, ch := range st.Channels {
		assert.Equal(t, "Replica", ch.Role, "channel %s", ch.Name)
	}
	// Its heartbeats, numbered from 1 again in its new boot, are heard:
	// none is dropped as older than those of its first boot.
	c.await("two heartbeats from the restarted node", func() bool {
		return c.metric(killed, "rolefsm_transport_datagrams_sent_total") >= 4
	})
	for _, id := range survivors {
		assert.Zero(t, c.metric(id, `rolefsm_node_batches_dropped_total{reason="stale"}`), "node %d", id)
	}

	// A graceful stop: exit 0, and the others agree without it.
	leaving := mostLeading(rejoined)
	p := c.signal(leaving, syscall.SIGTERM)
	require.NoError(t, p.Err, "exit 0 after SIGTERM\n%s", tail(p.Stderr))
	rest := slices.DeleteFunc(slices.Clone(all), func(id replica.NodeID) bool { return id == leaving })
	for ch, id := range c.settle(rest...) {
		assert.NotEqual(t, leaving, id, "channel %s", ch)
	}

	// Its audit log replays, and ends with the leader relinquishing.
	for ch, id := range rejoined {
		var out, errs bytes.Buffer
		code := run([]string{"replay", "-name", ch, p.Stderr}, nil, &out, &errs)
		require.Equal(t, exitOK, code, "%s\n%s", out.String(), errs.String())
		if id == leaving {
			assert.Contains(t, out.String(), "Leader → Idle (GracefulRelinquish) ok", "channel %s", ch)
		} else {
			assert.Contains(t, out.String(), "Replica → Idle (ChannelClose) ok", "channel %s", ch)
		}
		assert.Contains(t, out.String(), "role: Idle", "channel %s", ch)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestNodeProcessDropsBadDatagrams aims bad datagrams at a running node
// process: none changes a role, and each is counted under its reason.
// Node 2's datagrams to node 1 pass through a recorder, as through an
// attacker on the path, whose captures are replayed and tampered with;
// the test itself is node 3, a key holder, for the datagrams only a key
// holder can make, and a stranger with a key of its own.
func TestNodeProcessDropsBadDatagrams(t *testing.T) {
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders,payments", "-heartbeat", "200ms", "-miss", "3")
	path := newRecorder(t, c.UDP[1])
	c.Peers[1] = c.Peer(2, c.UDP[2]) + "," + c.Peer(3, c.UDP[3])
	c.Peers[2] = c.Peer(1, path.conn.LocalAddr().String()) + "," + c.Peer(3, c.UDP[3])
	c.start(1)
	c.start(2)
	c.settle(1, 2)
	before := [2]nodeStatus{}
	var err error
	for i, id := range []replica.NodeID{1, 2} {
		before[i], err = c.status(id)
		require.NoError(t, err)
	}
	var data [][]byte // node 2's sealed heartbeats to node 1
	for _, d := range path.captured() {
		if len(d) > 4 && d[3] == 4 {
			data = append(data, d)
		}
	}
	require.GreaterOrEqual(t, len(data), 3)

	// sender returns a transport with key k that sends to node 1 as
	// node id (or insecure if k is zero), knowing node 1 by pub.
	sender := func(id replica.NodeID, k udp.PrivateKey, pub udp.PublicKey, listen string) *udp.Transport {
		cfg := udp.Config{ID: id, Listen: listen, Key: k, Insecure: k == udp.PrivateKey{}, Logger: quietLog,
			Peers: map[replica.NodeID]udp.Peer{1: {Addr: c.UDP[1]}}}
		if !cfg.Insecure {
			cfg.Peers[1] = udp.Peer{Addr: c.UDP[1], Keys: []udp.PublicKey{pub}}
		}
		tr, err := udp.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	claim := replica.Batch{Seq: 1 << 40, Entries: []replica.Entry{
		{Channel: "orders", Role: rolefsm.Leader, Tail: 1 << 50}, {Channel: "payments", Role: rolefsm.Leader, Tail: 1 << 50}}}
	ctx := context.Background()

	raw, err := net.DialUDP("udp", nil, mustResolve(t, c.UDP[1]))
	require.NoError(t, err)
	defer raw.Close()
	send := func(d []byte) {
		_, err := raw.Write(d)
		require.NoError(t, err)
	}
	genuine := data[len(data)-1]
	flipped := slices.Clone(genuine)
	flipped[8] ^= 0x01 // the counter's top byte: a counter never seen, so it gets as far as the tag
	version := slices.Clone(genuine)
	version[2] = 1
	send(flipped)                                                                // bad_tag
	send(genuine[:40])                                                           // garbage: truncated
	send([]byte("GET / HTTP/1.1\r\n\r\n"))                                       // garbage
	send(append(slices.Clone(genuine), make([]byte, udp.DefaultMaxDatagram)...)) // oversize
	send(version)                                                                // version
	for _, d := range data[len(data)-3:] {
		send(d) // replayed: node 1 has had each already
	}
	require.NoError(t, sender(2, udp.PrivateKey{}, udp.PublicKey{}, "127.0.0.1:0").Send(ctx, 1, claim)) // bad_tag: in the clear
	stranger, err := udp.GenerateKey()
	require.NoError(t, err)
	wrong, err := udp.GenerateKey()
	require.NoError(t, err)
	// A stranger with a key of its own, claiming to be node 2: its
	// handshake names a key node 1 knows for nobody (unknown_sender).
	// And node 3's key with a wrong idea of node 1's: its handshake is
	// not made for node 1's key (misdirected). Both retry until closed.
	retrying := []*udp.Transport{
		sender(2, stranger, c.Keys[1].Public(), "127.0.0.1:0"),
		sender(3, c.Keys[3], wrong.Public(), "127.0.0.1:0"),
	}
	// As node 3, a key holder in every replica set: a channel node 1
	// does not hold, and a role that sends no heartbeat.
	three := sender(3, c.Keys[3], c.Keys[1].Public(), c.UDP[3])
	require.NoError(t, three.Send(ctx, 1, replica.Batch{Seq: 1, Entries: []replica.Entry{
		{Channel: "nosuch", Role: rolefsm.Leader, Tail: 1 << 50}, {Channel: "orders", Role: rolefsm.Candidate, Tail: 1 << 50}}}))

	want := map[string]float64{
		`rolefsm_transport_dropped_total{reason="bad_tag"}`:               2,
		`rolefsm_transport_dropped_total{reason="garbage"}`:               2,
		`rolefsm_transport_dropped_total{reason="oversize"}`:              1,
		`rolefsm_transport_dropped_total{reason="version"}`:               1,
		`rolefsm_transport_dropped_total{reason="replayed"}`:              3,
		`rolefsm_transport_dropped_total{reason="unknown_sender"}`:        1,
		`rolefsm_transport_dropped_total{reason="misdirected"}`:           1,
		`rolefsm_transport_dropped_total{reason="inbox_full"}`:            0,
		`rolefsm_transport_dropped_total{reason="superseded"}`:            0,
		`rolefsm_node_entries_dropped_total{reason="unknown_channel"}`:    1,
		`rolefsm_node_entries_dropped_total{reason="bad_role"}`:           1,
		`rolefsm_node_entries_dropped_total{reason="not_in_replica_set"}`: 0,
		`rolefsm_node_batches_dropped_total{reason="stale"}`:              0,
	}
	retried := map[string]bool{`rolefsm_transport_dropped_total{reason="unknown_sender"}`: true,
		`rolefsm_transport_dropped_total{reason="misdirected"}`: true}
	// Datagrams sent from several sockets may be read in any order, so
	// wait for the counts themselves: counters only grow, and a datagram
	// counted under a wrong reason never lets them match. The two
	// retrying handshakes count at least once each, then are stopped.
	match := func(got map[string]float64) bool {
		for series, n := range want {
			if got[series] != n && !(retried[series] && got[series] > n) {
				return false
			}
		}
		return true
	}
	got := map[string]float64{}
	deadline := time.Now().Add(patience)
	for {
		all := c.metrics(1)
		for series := range want {
			got[series] = all[series]
		}
		if match(got) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // a poll of a real process
	}
	for _, tr := range retrying {
		require.NoError(t, tr.Close())
	}
	require.True(t, match(got), "want %v\ngot  %v", want, got)
	t.Logf("node 1's drop counters: %v", got)

	for i, id := range []replica.NodeID{1, 2} {
		after, err := c.status(id)
		require.NoError(t, err)
		assert.Equal(t, before[i].Channels, after.Channels, "node %d: no role changed", id)
	}
}

// quietLog is a logger for the test's own transports.
var quietLog = slog.New(slog.DiscardHandler)

func mustResolve(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	return a
}
