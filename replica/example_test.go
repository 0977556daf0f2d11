package replica_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
)

// Example runs three nodes on the in-memory network, each with a
// Driver. Node 1 is elected; cut off from the others, it is replaced by
// node 2, which appends; when the network heals, node 1 sees a leader
// with a longer log and concedes, and the lease it took on winning no
// longer holds, so a write it still had in flight is refused.
func Example() {
	hb, _ := policy.NewHeartbeat(100*time.Millisecond, 3)
	net := replica.NewMemNetwork()
	ids := []replica.NodeID{1, 2, 3}
	leadership := make(chan string, 16) // what the observers saw
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var drivers []*replica.Driver
	for _, id := range ids {
		node, _ := replica.NewNode(replica.Config{ID: id, Heartbeat: hb}, time.Now())
		observe := func(_ context.Context, r rolefsm.Record) {
			if r.Err == nil && (r.From == rolefsm.Leader || r.To == rolefsm.Leader) {
				leadership <- fmt.Sprintf("n%d: %v", id, r.Transition)
			}
		}
		_ = node.Open(ctx, time.Now(), replica.ChannelConfig{
			Name: "orders", Replicas: ids, Options: []rolefsm.Option{rolefsm.WithObserver(observe)},
		})
		tr, _ := net.Join(id, 0)
		defer tr.Close()
		d := replica.NewDriver(node, tr, replica.DriverOptions{})
		drivers = append(drivers, d)
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(ctx) }()
	}
	defer wg.Wait()
	defer stop()

	fmt.Println(<-leadership)
	var lease rolefsm.Lease
	_ = drivers[0].Do(func(n *replica.Node, _ time.Time) error {
		lease, _ = n.Lease("orders") // taken when it won: it guards every append
		return nil
	})

	net.Partition(1)
	fmt.Println(<-leadership)
	_ = drivers[1].Do(func(n *replica.Node, _ time.Time) error { return n.SetTail("orders", 1) })

	net.Heal()
	fmt.Println(<-leadership)
	_ = drivers[0].Do(func(n *replica.Node, _ time.Time) error {
		c := n.Coordinator("orders")
		fmt.Println("n1's append under its old lease lands:", c.Holds(lease))
		st, _ := n.Status("orders")
		fmt.Printf("n1 is %v, following n%d\n", st.Role, st.Leader)
		return nil
	})
	// Output:
	// n1: Candidate → Leader (ElectionWon)
	// n2: Candidate → Leader (ElectionWon)
	// n1: Leader → Replica (PeerLeaderObserved)
	// n1's append under its old lease lands: false
	// n1 is Replica, following n2
}
