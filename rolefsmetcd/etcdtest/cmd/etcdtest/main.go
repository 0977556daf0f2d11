// Command etcdtest runs an etcd cluster of -members members on
// 127.0.0.1 in a temporary directory until it is stopped, for the
// benchmarks under bench/: it prints the client endpoints, comma-
// separated, on its first line of stdout.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rolefsm/rolefsm/rolefsmetcd/etcdtest"
)

func main() {
	members := flag.Int("members", 1, "how many members")
	flag.Parse()
	if err := run(*members); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(1)
	}
}

func run(members int) error {
	dir, err := os.MkdirTemp("", "etcdtest")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	c, err := etcdtest.Start(dir, members)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println(strings.Join(c.Endpoints(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
