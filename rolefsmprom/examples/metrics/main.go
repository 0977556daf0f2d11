// Command metrics is a runnable example: it drives a few channels'
// coordinators and serves their metrics for Prometheus to scrape.
//
//	go run ./rolefsmprom/examples/metrics            # http://127.0.0.1:9464/metrics
//	go run ./rolefsmprom/examples/metrics -addr 127.0.0.1:0
//
// It listens on the loopback interface unless -addr says otherwise, and
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/rolefsmprom"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9464", "address to serve /metrics on")
	flag.Parse()
	if err := serve(*addr); err != nil {
		log.Fatal(err)
	}
}

// serve runs until SIGINT or SIGTERM.
func serve(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, addr, func(a string) { log.Printf("serving http://%s/metrics", a) })
}

// run sets up three channels in different roles, serves their metrics on
// addr until ctx is done, and calls ready with the address it listens on.
func run(ctx context.Context, addr string, ready func(string)) error {
	set := rolefsmprom.NewSet()
	reg := prometheus.NewRegistry()
	if err := reg.Register(set); err != nil {
		return err
	}
	paths := map[string][]rolefsm.Signal{
		"orders":   {rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon},
		"payments": {rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionLost},
		"audit":    {rolefsm.CapabilitySelected, rolefsm.DiskPressureWithdraw},
	}
	for name, path := range paths {
		c, err := rolefsm.NewCoordinator(rolefsm.WithName(name))
		if err != nil {
			return err
		}
		for _, sig := range path {
			if _, err := c.Fire(ctx, sig); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		if _, err := set.Add(c); err != nil {
			return err
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ready(ln.Addr().String())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
