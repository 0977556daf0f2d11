// Package etcdtest runs a real etcd cluster inside the process, on
// loopback ports and in a directory of the caller's, for tests and
// benchmarks: go.etcd.io/etcd/server/v3/embed, no mocks.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is an etcd cluster of one or more members in this process.
type Cluster struct {
	members []*embed.Etcd
	clients []string
}

// Start starts a cluster of n members with their data under dir, on
// free ports of 127.0.0.1, and waits until it serves (up to a minute).
func Start(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcdtest: %d members", n)
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
		client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		initial = append(initial, cfg.Name+"="+peer.String())
		cfgs[i] = cfg
	}
	c := &Cluster{}
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
	return c, nil
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
