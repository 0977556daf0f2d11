package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmetcd/etcdtest"
)

// TestNodeProcessesElectInEtcd runs three node processes with
// -election etcd against a real etcd started in the test: one leader
// per channel, each with a fencing token of etcd's; a leader killed with
// SIGKILL is replaced once its session's TTL runs out; a leader stopped
// with SIGTERM hands over through etcd, and the new terms' tokens are
// above the old. Against the etcd server the client module embeds and,
// when $ROLEFSM_TEST_ETCD names an etcd binary (CI: Debian's
// etcd-server, 3.4), against that server too.
func TestNodeProcessesElectInEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	t.Run("embedded", func(t *testing.T) {
		etcd, err := etcdtest.Start(t.TempDir(), 1)
		require.NoError(t, err)
		t.Cleanup(etcd.Close) // after the nodes are stopped: cleanups run last first
		electInEtcd(t, etcd.Endpoint(0))
	})
	bin := os.Getenv("ROLEFSM_TEST_ETCD")
	if bin == "" {
		t.Log("$ROLEFSM_TEST_ETCD unset: no external etcd server tested")
		return
	}
	t.Run(filepath.Base(bin), func(t *testing.T) { electInEtcd(t, startEtcdBinary(t, bin)) })
}

// startEtcdBinary starts the etcd server at bin, one member on loopback
// ports in a temporary directory, waits until it answers, and returns
// its client endpoint; the process is killed with the test.
func startEtcdBinary(t *testing.T, bin string) string {
	t.Helper()
	port := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().String()
	}
	client, peer := port(), port()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--name", "t", "--data-dir", t.TempDir(),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "t=http://"+peer)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	t.Logf("%s", strings.SplitN(string(out), "\n", 2)[0])
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	for deadline := time.Now().Add(patience); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Status(ctx, client)
		cancel()
		if err == nil {
			return client
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd at %s never answered: %v\n%s", client, err, logs.String())
		}
	}
}

func electInEtcd(t *testing.T, endpoint string) {
	c := newCluster(t, []replica.NodeID{1, 2, 3}, "-channels", "orders,payments,users", "-heartbeat", "100ms",
		"-election", "etcd", "-etcd", endpoint, "-etcd-ttl", "2s")
	for id := range c.UDP {
		c.start(id)
	}
	all := []replica.NodeID{1, 2, 3}
	leaders := c.settle(all...)
	tokens := map[string]int64{}
	for id := range c.Procs {
		st, err := c.status(id)
		require.NoError(t, err)
		require.NotNil(t, st.Etcd, "node %d: /status has no etcd section", id)
		assert.Equal(t, uint64(1), st.Etcd.Grants, "node %d: one session", id)
		for _, ch := range st.Channels {
			if ch.Role == "Leader" {
				require.NotNil(t, ch.Token, "%s: its leader shows no token", ch.Name)
				assert.Equal(t, fmt.Sprintf("/rolefsm/election/%s/", ch.Name), ch.Token.Key[:len(ch.Token.Key)-len(lastPart(ch.Token.Key))])
				tokens[ch.Name] = ch.Token.Revision
			} else {
				assert.Nil(t, ch.Token, "%s: a %s shows a token", ch.Name, ch.Role)
			}
		}
	}
	assert.Equal(t, 1.0, c.metric(1, "rolefsm_etcd_requests_total{kind=\"grant\"}"))

	killed := mostLeading(leaders)
	c.signal(killed, syscall.SIGKILL)
	rest := without(all, killed)
	after := c.settle(rest...)
	for ch, id := range after {
		assert.NotEqual(t, killed, id, "%s", ch)
	}
	// A survivor has renewed its session while the victim's expired:
	// its keep-alives' round trips are on /metrics.
	assert.Positive(t, c.metric(rest[0], "rolefsm_etcd_keepalive_wait_seconds_count"))
	assert.Positive(t, c.metric(rest[0], "rolefsm_etcd_keepalive_wait_seconds_sum"))
	newTokens := c.tokens(rest...)
	for ch, rev := range newTokens {
		if leaders[ch] == killed {
			assert.Greater(t, rev, tokens[ch], "%s: the new term's token", ch)
		}
	}

	stopped := mostLeading(after)
	p := c.signal(stopped, syscall.SIGTERM)
	require.NoError(t, p.Err, "SIGTERM: exit 0")
	last := without(rest, stopped)
	final := c.settle(last...)
	for ch, id := range final {
		assert.Equal(t, last[0], id, "%s", ch)
	}
	assert.Contains(t, tail(p.Stderr), "GracefulRelinquish")
}

func lastPart(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

func without(ids []replica.NodeID, x replica.NodeID) []replica.NodeID {
	var out []replica.NodeID
	for _, id := range ids {
		if id != x {
			out = append(out, id)
		}
	}
	return out
}

// tokens returns the revision of every leader's token among ids.
func (c *cluster) tokens(ids ...replica.NodeID) map[string]int64 {
	c.t.Helper()
	out := map[string]int64{}
	for _, id := range ids {
		st, err := c.status(id)
		require.NoError(c.t, err)
		for _, ch := range st.Channels {
			if ch.Token != nil {
				out[ch.Name] = ch.Token.Revision
			}
		}
	}
	return out
}

// TestNodeEtcdUnreachable: etcd down at start is exit 1, naming it, and
// nothing is left running; also with a user (etcd's client then
// authenticates first) and over TLS.
func TestNodeEtcdUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	certs, err := etcdtest.GenerateCerts(t.TempDir())
	require.NoError(t, err)
	for _, tc := range []struct {
		args     []string
		endpoint string
		env      string
	}{
		{[]string{"-etcd", addr}, addr, ""},
		{[]string{"-etcd", addr, "-etcd-user", "node"}, addr, "s3cret"},
		{[]string{"-etcd", "https://" + addr, "-etcd-ca", certs.CA}, "https://" + addr, ""},
	} {
		t.Setenv(etcdPasswordEnv, tc.env)
		var stdout, stderr bytes.Buffer
		code := node(context.Background(), append([]string{"-id", "1", "-listen", "127.0.0.1:0", "-channels", "a", "-insecure",
			"-election", "etcd", "-etcd-ttl", "2s"}, tc.args...), &stdout, &stderr)
		assert.Equal(t, exitRejected, code, "%v", tc.args)
		assert.Contains(t, stderr.String(), "rolefsm node: rolefsmetcd: cannot reach etcd at ["+tc.endpoint+"]", "%v", tc.args)
		assert.Empty(t, stdout.String())
	}
}

// electsThroughEtcd waits until nodes ids agree on one leader per
// channel, each leader showing a token of etcd's.
func (c *cluster) electsThroughEtcd(ids ...replica.NodeID) {
	c.t.Helper()
	c.await(fmt.Sprintf("one leader per channel, with its token, among nodes %v", ids), func() bool {
		leaders, ok := c.leaders(ids...)
		if !ok {
			return false
		}
		for _, id := range ids {
			st, err := c.status(id)
			if err != nil {
				return false
			}
			for _, ch := range st.Channels {
				if leaders[ch.Name] == id && (ch.Role != "Leader" || ch.Token == nil || ch.Token.Revision <= 0) {
					return false
				}
			}
		}
		return true
	})
}

// TestNodeProcessesElectThroughEtcdWithTLS: node processes elect
// through an etcd that serves TLS only and requires a client
// certificate, given as -etcd https://... -etcd-ca -etcd-cert -etcd-key.
func TestNodeProcessesElectThroughEtcdWithTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	etcd, err := etcdtest.Start(t.TempDir(), 1, etcdtest.WithClientTLS())
	require.NoError(t, err)
	t.Cleanup(etcd.Close)
	certs := etcd.Certs()
	c := newCluster(t, []replica.NodeID{1, 2}, "-channels", "orders,payments", "-heartbeat", "100ms",
		"-election", "etcd", "-etcd", etcd.URL(0),
		"-etcd-ca", certs.CA, "-etcd-cert", certs.ClientCert, "-etcd-key", certs.ClientKey)
	// A HOST:PORT endpoint with the TLS flags is TLS too.
	c.NodeArgs[2] = []string{"-etcd", etcd.Endpoint(0)}
	c.start(1)
	c.start(2)
	c.electsThroughEtcd(1, 2)
}

// TestNodeProcessesElectThroughEtcdWithAuth: node processes elect
// through an etcd with authentication enabled, as a user whose role
// covers the election prefix only: node 1 reads the password from a
// file, node 2 from $ROLEFSM_ETCD_PASSWORD.
func TestNodeProcessesElectThroughEtcdWithAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	etcd, err := etcdtest.Start(t.TempDir(), 1,
		etcdtest.WithAuth(etcdtest.Auth{User: "node", Password: "s3cret", Prefix: "/rolefsm/election"}))
	require.NoError(t, err)
	t.Cleanup(etcd.Close)
	c := newCluster(t, []replica.NodeID{1, 2}, "-channels", "orders,payments", "-heartbeat", "100ms",
		"-election", "etcd", "-etcd", etcd.URL(0), "-etcd-user", "node")
	passwordFile := filepath.Join(c.Dir, "etcd.password")
	require.NoError(t, os.WriteFile(passwordFile, []byte("s3cret\n"), 0o600))
	c.NodeArgs[1] = []string{"-etcd-password-file", passwordFile}
	c.NodeEnv[2] = []string{etcdPasswordEnv + "=s3cret"}
	c.start(1)
	c.start(2)
	c.electsThroughEtcd(1, 2)
}

// TestNodeEtcdRefusesCredentials: credentials etcd refuses at start are
// exit 1 with a message that says what failed, not etcd's own words,
// and nothing is left running.
func TestNodeEtcdRefusesCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	dir := t.TempDir()
	auth, err := etcdtest.Start(filepath.Join(dir, "auth"), 1,
		etcdtest.WithAuth(etcdtest.Auth{User: "node", Password: "s3cret", Prefix: "/rolefsm/election"}))
	require.NoError(t, err)
	defer auth.Close()
	secure, err := etcdtest.Start(filepath.Join(dir, "tls"), 1, etcdtest.WithClientTLS())
	require.NoError(t, err)
	defer secure.Close()
	certs := secure.Certs()
	other, err := etcdtest.GenerateCerts(filepath.Join(dir, "other"))
	require.NoError(t, err)
	wrong, right := filepath.Join(dir, "wrong.password"), filepath.Join(dir, "right.password")
	require.NoError(t, os.WriteFile(wrong, []byte("guess\n"), 0o600))
	require.NoError(t, os.WriteFile(right, []byte("s3cret"), 0o600))
	base := []string{"-id", "1", "-listen", "127.0.0.1:0", "-channels", "a", "-insecure", "-election", "etcd", "-etcd-ttl", "2s"}

	for _, tc := range []struct {
		name string
		args []string
		msgs []string
	}{
		{"a wrong password", []string{"-etcd", auth.Endpoint(0), "-etcd-user", "node", "-etcd-password-file", wrong},
			[]string{`rolefsm node: etcd at [` + auth.Endpoint(0) + `]: authentication failed for user "node": wrong user name or password`}},
		{"no user", []string{"-etcd", auth.Endpoint(0)},
			[]string{"authentication failed: etcd has authentication enabled and no user was given: give -etcd-user"}},
		{"a prefix the user may not use", []string{"-etcd", auth.Endpoint(0), "-etcd-user", "node", "-etcd-password-file", right,
			"-etcd-prefix", "/elsewhere"}, []string{`user "node" may not use the keys under -etcd-prefix /elsewhere: permission denied`}},
		{"no client certificate", []string{"-etcd", secure.URL(0), "-etcd-ca", certs.CA},
			[]string{"rolefsm node: etcd at " + secure.URL(0) + ": TLS handshake failed: remote error: tls: certificate required: " +
				"the server refused this client: it wants a client certificate its CA signed (-etcd-cert, -etcd-key)"}},
		{"another CA", []string{"-etcd", secure.URL(0), "-etcd-ca", other.CA, "-etcd-cert", certs.ClientCert, "-etcd-key", certs.ClientKey},
			[]string{"TLS handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority",
				"the server's certificate is not signed by a CA of -etcd-ca"}},
		{"TLS to an etcd in the clear", []string{"-etcd", "https://" + auth.Endpoint(0), "-etcd-ca", certs.CA},
			[]string{"TLS handshake failed: the server hung up in the handshake: it may not speak TLS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := node(context.Background(), append(slices.Clone(base), tc.args...), &stdout, &stderr)
			assert.Equal(t, exitRejected, code)
			for _, msg := range tc.msgs {
				assert.Contains(t, stderr.String(), msg)
			}
			assert.NotContains(t, stderr.String(), "user name is empty")
			assert.Empty(t, stdout.String())
		})
	}
}
