package rolefsmetcd_test

import (
	"context"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/rolefsmetcd"
	"github.com/rolefsm/rolefsm/rolefsmetcd/etcdtest"
)

// A node elects its channel's leader in etcd, and a store fences its
// writes with the term's token: once the node relinquishes, a write
// still carrying the old token is refused by etcd itself, whatever the
// writer believes.
func ExampleToken_Guard() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	etcd, err := etcdtest.Start(dir, 1)
	if err != nil {
		panic(err)
	}
	defer etcd.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		panic(err)
	}
	defer cli.Close()

	// A node whose leadership etcd decides, on an in-memory network.
	n, _ := replica.NewNode(replica.Config{ID: 1, External: true}, time.Now())
	_ = n.Open(ctx, time.Now(), replica.ChannelConfig{Name: "orders", Replicas: []replica.NodeID{1}})
	tr, _ := replica.NewMemNetwork().Join(1, 0)
	defer tr.Close()
	d := replica.NewDriver(n, tr, replica.DriverOptions{})
	el, err := rolefsmetcd.New(ctx, rolefsmetcd.Config{Client: cli, TTL: 5 * time.Second}, d)
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = d.Run(runCtx) }()
	go func() { _ = el.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	// Wait until the node leads, and take the term's token.
	_, _ = n.Coordinator("orders").Wait(ctx, func(l rolefsm.Lease) bool { return l.Role == rolefsm.Leader })
	tok, _ := el.Token("orders")

	write := func(value string) bool {
		resp, err := cli.Txn(ctx).If(tok.Guard()).Then(clientv3.OpPut("/store/orders", value)).Commit()
		return err == nil && resp.Succeeded
	}
	fmt.Println("write during the term:", write("one"))
	if err := el.Relinquish(ctx, "orders"); err != nil {
		panic(err)
	}
	fmt.Println("write after relinquishing:", write("two"))
	// Output:
	// write during the term: true
	// write after relinquishing: false
}
