package etcdtest

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// etcd's embedded server starts these once per process and
		// never stops them.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
	)
}

// TestClientTLS: a cluster started WithClientTLS serves a client with
// the generated client certificate, and no client without one or that
// does not trust its CA.
func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	c, err := Start(dir, 1, WithClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	certs := c.Certs()
	if certs == nil || c.URL(0) != "https://"+c.Endpoint(0) {
		t.Fatalf("certs %v, URL %s", certs, c.URL(0))
	}
	for _, f := range []string{certs.CA, certs.ServerCert, certs.ServerKey, certs.ClientCert, certs.ClientKey} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	if info, err := os.Stat(certs.ClientKey); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("client key: %v, %v", info.Mode(), err)
	}

	cli, err := c.Client("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}

	full, err := certs.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateCerts(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := other.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	noCert := full.Clone()
	noCert.Certificates = nil
	for name, tlsCfg := range map[string]*tls.Config{"no client certificate": noCert, "another CA": untrusted} {
		cli, err := clientv3.New(clientv3.Config{Endpoints: c.URLs(), TLS: tlsCfg, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = cli.Get(ctx, "k")
		cancel()
		_ = cli.Close()
		if err == nil {
			t.Errorf("%s: served", name)
		}
	}
}

// TestAuth: a cluster started WithAuth refuses a client without a
// user, lets the user read and write under its prefix only, and root
// everything.
func TestAuth(t *testing.T) {
	const prefix = "/rolefsm/election"
	c, err := Start(t.TempDir(), 1, WithAuth(Auth{User: "node", Password: "s3cret", Prefix: prefix}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a := c.Auth(); a == nil || a.RootPassword != "root" || a.User != "node" {
		t.Fatalf("Auth() = %+v", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put := func(user, password, key string) error {
		cli, err := c.Client(user, password)
		if err != nil {
			return err
		}
		defer cli.Close()
		_, err = cli.Put(ctx, key, "v")
		return err
	}
	for _, tc := range []struct {
		user, password, key string
		want                error
	}{
		{"", "", prefix + "/a/1", rpctypes.ErrUserEmpty},
		{"node", "wrong", prefix + "/a/1", rpctypes.ErrAuthFailed},
		{"node", "s3cret", prefix + "/a/1", nil},
		{"node", "s3cret", "/elsewhere", rpctypes.ErrPermissionDenied},
		{"root", "root", "/elsewhere", nil},
	} {
		if err := put(tc.user, tc.password, tc.key); !errors.Is(err, tc.want) {
			t.Errorf("%q puts %s: %v, want %v", tc.user, tc.key, err, tc.want)
		}
	}
	if _, err := Start(t.TempDir(), 1, WithAuth(Auth{User: "root", Password: "x", Prefix: "/"})); err == nil {
		t.Error("WithAuth with User root: started")
	}
}
