// Command concnode is the peer that bench/etcdside.sh runs beside
// rolefsm's elections in etcd: what a user writes by hand with
// go.etcd.io/etcd/client/v3/concurrency, one session for the process
// and one Election per channel, each campaigning for as long as the
// process runs (concurrency's own layout: PREFIX/CHANNEL/LEASE, the
// node's id as the value, the lowest create revision leads).
//
//	concnode -id 1 -endpoints HOST:PORT -channels 1000 [-ttl 2] [-prefix /bench/conc]
//
// It counts every request its client makes (unary calls by method,
// stream messages sent by method) and serves them as JSON on -http
// (GET /requests), and serves when each election's Campaign returned
// (the node took office; GET /led: channel → Unix nanoseconds). Its
// first line on stdout is "ready http=ADDR"; it runs until SIGINT or
// SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "concnode:", err)
		os.Exit(1)
	}
}

// requests counts what the client sends, by gRPC method.
type requests struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (r *requests) add(method string) {
	r.mu.Lock()
	r.n[method]++
	r.mu.Unlock()
}

func (r *requests) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	r.add(method)
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (r *requests) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	r.add(method + "#open")
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &countedStream{ClientStream: s, r: r, method: method}, nil
}

// led records when each channel's Campaign returned won.
type led struct {
	mu sync.Mutex
	at map[string]int64
}

func (l *led) won(channel string) {
	l.mu.Lock()
	l.at[channel] = time.Now().UnixNano()
	l.mu.Unlock()
}

type countedStream struct {
	grpc.ClientStream
	r      *requests
	method string
}

func (s *countedStream) SendMsg(m any) error {
	s.r.add(s.method)
	return s.ClientStream.SendMsg(m)
}

func run() error {
	id := flag.Int("id", 0, "this node's id, 1-based")
	endpoints := flag.String("endpoints", "", "etcd's endpoints, comma-separated")
	channels := flag.Int("channels", 1, "channels to campaign for")
	ttl := flag.Int("ttl", 2, "the session's TTL, in seconds")
	prefix := flag.String("prefix", "/bench/conc", "the elections' prefix")
	httpAddr := flag.String("http", "127.0.0.1:0", "where to serve GET /requests")
	flag.Parse()
	if *id < 1 || *endpoints == "" || *channels < 1 || *ttl < 1 {
		return errors.New("want -id 1 or more, -endpoints, -channels 1 or more, -ttl 1 or more")
	}
	reqs := &requests{n: map[string]uint64{}}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(reqs.unary), grpc.WithChainStreamInterceptor(reqs.stream)},
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(*ttl), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before Wait: the campaigns end with the context
	office := &led{at: map[string]int64{}}
	for i := 1; i <= *channels; i++ {
		name := fmt.Sprintf("ch%05d", i)
		el := concurrency.NewElection(s, *prefix+"/"+name)
		wg.Go(func() { // Campaign returns once leader, or when ctx ends
			if el.Campaign(ctx, strconv.Itoa(*id)) == nil {
				office.won(name)
			}
		})
	}
	l, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /requests", func(w http.ResponseWriter, _ *http.Request) {
		reqs.mu.Lock()
		defer reqs.mu.Unlock()
		_ = json.NewEncoder(w).Encode(reqs.n)
	})
	mux.HandleFunc("GET /led", func(w http.ResponseWriter, _ *http.Request) {
		office.mu.Lock()
		defer office.mu.Unlock()
		_ = json.NewEncoder(w).Encode(office.at)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	fmt.Printf("ready http=%s\n", l.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return nil
}
