package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica/udp"
	"github.com/rolefsm/rolefsm/server"
)

// A node of one: it takes office once it has waited a heartbeat timeout
// for a leader, runs the work of its term until the term ends, and
// leaves gracefully when its context does.
func Example() {
	key, err := udp.GenerateKey()
	if err != nil {
		panic(err)
	}
	hb, _ := policy.NewHeartbeat(100*time.Millisecond, 3)
	leading := make(chan struct{})
	s, err := server.New(server.Config{
		ID: 1, Listen: "127.0.0.1:0", Key: key, Channels: []string{"orders"}, Heartbeat: hb,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnStartedLeading: func(ctx context.Context, channel string, lease rolefsm.Lease) {
			fmt.Println("leading", channel, "as", lease.Role)
			close(leading)
			<-ctx.Done() // append to the log here, until the term ends
			fmt.Println("term over on", channel)
		},
	})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-leading
	stop()
	fmt.Println("left:", <-done)
	// Output:
	// leading orders as Leader
	// term over on orders
	// left: <nil>
}
