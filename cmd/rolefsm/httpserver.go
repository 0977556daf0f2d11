package main

// The HTTP server of rolefsm node (-http): GET /status, GET /metrics and
// the profiles answer a few scrapers and operators, so the server is
// bounded in time and in open connections, and its own errors go to
// the process log as lines of their own, apart from the coordinators'
// audit lines.

import (
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// httpLimits bounds the node's HTTP server.
type httpLimits struct {
	// ReadHeader, Read, Write and Idle are http.Server's timeouts: to
	// read a request's header, to read all of a request, to write a
	// response, and to keep an idle keep-alive connection open.
	ReadHeader, Read, Write, Idle time.Duration
	// MaxConns bounds the open connections: a connection beyond it
	// waits in the kernel's backlog until one closes.
	MaxConns int
}

// defaultHTTPLimits are rolefsm node's. Write leaves room for Go's
// 30-second CPU profile (-pprof), which net/http/pprof refuses when the
// write timeout is not longer; Idle outlasts a Prometheus scrape
// interval of a minute, so a scraper keeps its connection; 64
// connections are plenty for scrapers and operators, and keep a flood
// of them from taking the process's file descriptors.
var defaultHTTPLimits = httpLimits{
	ReadHeader: 5 * time.Second,
	Read:       10 * time.Second,
	Write:      60 * time.Second,
	Idle:       90 * time.Second,
	MaxConns:   64,
}

// httpComponent is the "component" of the server's own log lines: they
// have no "to" or "signal", so rolefsm replay passes over them, and the
// field tells them from the coordinators' audit lines for anyone else.
const httpComponent = "http"

// newHTTPServer returns a server of h within lim, and ln bounded to
// lim.MaxConns open connections, to serve on. The server's own errors
// ("http: Accept error", a handler's panic, a TLS handshake error) are
// logged at warn level through logger's handler with
// "component":"http"; sharing the handler keeps each line whole
// beside the audit lines written through it.
func newHTTPServer(ln net.Listener, h http.Handler, lim httpLimits, logger *slog.Logger) (*http.Server, net.Listener) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		ErrorLog:          httpErrorLog(logger),
	}
	return srv, netutil.LimitListener(ln, lim.MaxConns)
}

// httpErrorLog is the http.Server's ErrorLog: each line it prints is a
// warning of logger's with "component":"http".
func httpErrorLog(logger *slog.Logger) *log.Logger {
	return slog.NewLogLogger(logger.With("component", httpComponent).Handler(), slog.LevelWarn)
}

// statusMaxAge is how long GET /status and GET /readyz answer from one
// reading of the node by default (-status-max-age): each reading takes
// the driver's lock over every channel, so a flood of requests must not
// become a flood of readings (at most four a second, whatever the
// request rate). A benchmark that times failovers on /status sets 0.
const statusMaxAge = 250 * time.Millisecond

// snapshot caches compute's result for maxAge. It is safe for
// concurrent use; a request that finds it stale computes it again while
// the others wait for that reading.
type snapshot struct {
	maxAge  time.Duration
	now     func() time.Time
	compute func() ([]byte, error)

	mu    sync.Mutex
	at    time.Time
	body  []byte
	err   error
	valid bool
}

func (s *snapshot) get() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); !s.valid || now.Sub(s.at) >= s.maxAge || now.Before(s.at) {
		s.body, s.err = s.compute()
		s.at, s.valid = now, true
	}
	return s.body, s.err
}
