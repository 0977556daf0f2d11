// Package etcdtest runs a real etcd cluster inside the process, on
// loopback ports and in a directory of the caller's, for tests and
// benchmarks: go.etcd.io/etcd/server/v3/embed, no mocks. Options serve
// clients over TLS with client certificates (WithClientTLS) and enable
// authentication (WithAuth), as a production etcd is run.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is an etcd cluster of one or more members in this process.
type Cluster struct {
	members []*embed.Etcd
	clients []string
	certs   *Certs // with WithClientTLS
	auth    *Auth  // with WithAuth
}

// Option configures Start.
type Option func(*options)

type options struct {
	tls  bool
	auth *Auth
}

// WithClientTLS serves clients over TLS only and requires a client
// certificate signed by the cluster's CA. Start generates the CA, a
// server certificate for the loopback addresses and a client
// certificate under dir/tls (see Cluster.Certs and GenerateCerts). The
// members talk to each other in the clear.
func WithClientTLS() Option { return func(o *options) { o.tls = true } }

// Auth is the users of a cluster started WithAuth.
type Auth struct {
	// RootPassword is the password of etcd's root user, who may do
	// everything; "root" if empty.
	RootPassword string
	// User and Password are a user whose role (named after the user)
	// may read and write every key that starts with Prefix, and
	// nothing else.
	User, Password string
	// Prefix is the keys User may use, such as an election prefix.
	Prefix string
}

// WithAuth enables authentication once the cluster serves, through the
// client API as an operator does: the root user and role, then a.User
// with its role over a.Prefix, then auth enable. Every client must then
// authenticate.
func WithAuth(a Auth) Option {
	return func(o *options) {
		if a.RootPassword == "" {
			a.RootPassword = "root"
		}
		o.auth = &a
	}
}

// Start starts a cluster of n members with their data under dir, on
// free ports of 127.0.0.1, and waits until it serves (up to a minute).
func Start(dir string, n int, opts ...Option) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcdtest: %d members", n)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if a := o.auth; a != nil && (a.User == "" || a.User == "root" || a.Password == "" || a.Prefix == "") {
		return nil, errors.New("etcdtest: WithAuth needs a User other than root, a Password and a Prefix")
	}
	c := &Cluster{auth: o.auth}
	clientScheme := "http"
	if o.tls {
		certs, err := GenerateCerts(filepath.Join(dir, "tls"))
		if err != nil {
			return nil, err
		}
		c.certs, clientScheme = certs, "https"
	}
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	cfgs := make([]*embed.Config, n)
	var initial []string
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i+1)
		cfg.Dir = fmt.Sprintf("%s/%s", dir, cfg.Name)
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		client := url.URL{Scheme: clientScheme, Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		if c.certs != nil {
			cfg.ClientTLSInfo = transport.TLSInfo{CertFile: c.certs.ServerCert, KeyFile: c.certs.ServerKey,
				TrustedCAFile: c.certs.CA, ClientCertAuth: true}
		}
		initial = append(initial, cfg.Name+"="+peer.String())
		cfgs[i] = cfg
	}
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("etcdtest: start %s: %w", cfg.Name, err)
		}
		c.members = append(c.members, e)
		c.clients = append(c.clients, cfg.ListenClientUrls[0].Host)
	}
	timeout := time.After(time.Minute)
	for _, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			c.Close()
			return nil, fmt.Errorf("etcdtest: %w", err)
		case <-timeout:
			c.Close()
			return nil, errors.New("etcdtest: the cluster did not become ready in a minute")
		}
	}
	if c.auth != nil {
		if err := c.enableAuth(); err != nil {
			c.Close()
			return nil, fmt.Errorf("etcdtest: enable auth: %w", err)
		}
	}
	return c, nil
}

// enableAuth adds the root user and c.auth's user, then enables auth.
func (c *Cluster) enableAuth() error {
	cli, err := c.Client("", "")
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := c.auth
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", a.RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, a.User); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, a.User, a.Prefix, clientv3.GetPrefixRangeEnd(a.Prefix),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, a.User, a.Password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, a.User, a.User); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// Client returns a client of every member, with the cluster's client
// certificate if it serves TLS, authenticated as user with password
// unless user is empty. The caller closes it.
func (c *Cluster) Client(user, password string) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: c.URLs(), DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		Username: user, Password: password}
	if c.certs != nil {
		tlsCfg, err := c.certs.ClientTLS()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tlsCfg
	}
	return clientv3.New(cfg)
}

// FreePorts asks the kernel for n free ports of 127.0.0.1. A port can
// be taken by someone else between this and its use: on loopback in a
// test, rare.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// Endpoints returns every member's client address (host:port).
func (c *Cluster) Endpoints() []string { return append([]string(nil), c.clients...) }

// Endpoint returns member i's client address.
func (c *Cluster) Endpoint(i int) string { return c.clients[i] }

// URL returns member i's client URL: https://HOST:PORT with
// WithClientTLS, else http://HOST:PORT.
func (c *Cluster) URL(i int) string {
	if c.certs != nil {
		return "https://" + c.clients[i]
	}
	return "http://" + c.clients[i]
}

// URLs returns every member's client URL.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.clients))
	for i := range c.clients {
		urls[i] = c.URL(i)
	}
	return urls
}

// Certs returns (a copy of) the files of the cluster's TLS, nil
// without WithClientTLS.
func (c *Cluster) Certs() *Certs {
	if c.certs == nil {
		return nil
	}
	certs := *c.certs
	return &certs
}

// Auth returns (a copy of) the cluster's users, nil without WithAuth.
func (c *Cluster) Auth() *Auth {
	if c.auth == nil {
		return nil
	}
	a := *c.auth
	return &a
}

// Stop stops member i, as a crash would from its peers' view; the
// others go on if they keep a quorum.
func (c *Cluster) Stop(i int) {
	if e := c.members[i]; e != nil {
		e.Close()
		c.members[i] = nil
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}
