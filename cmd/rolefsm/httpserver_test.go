package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
)

// pipeListener is a listener of in-memory connections (net.Pipe): in a
// synctest bubble the server's waits on them are durable, and its
// deadlines run on the bubble's clock.
type pipeListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn, 16), done: make(chan struct{})} // 16: the backlog
}

// dial connects to the listener; the connection waits in the backlog
// until accepted.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// get sends GET path on c, keeping the connection alive, and reads the
// response.
func get(t *testing.T, c net.Conn, r *bufio.Reader, path string) string {
	t.Helper()
	_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: node\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestHTTPServerClosesIdleConnections: a keep-alive connection left idle
// is closed by the server once the idle timeout has passed on the
// (bubble's) clock, though the read timeout is far longer.
func TestHTTPServerClosesIdleConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		lim := httpLimits{ReadHeader: time.Minute, Read: time.Minute, Write: time.Minute, Idle: 3 * time.Second, MaxConns: 4}
		srv, limited := newHTTPServer(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}), lim, slog.New(slog.DiscardHandler))
		served := make(chan error, 1)
		go func() { served <- srv.Serve(limited) }()

		c := ln.dial()
		defer c.Close()
		r := bufio.NewReader(c)
		assert.Equal(t, "ok", get(t, c, r, "/"))
		assert.Equal(t, "ok", get(t, c, r, "/"), "the connection is kept alive")
		idleFrom := time.Now()
		_, err := r.ReadByte() // returns when the server closes the connection
		assert.ErrorIs(t, err, io.EOF)
		assert.Equal(t, lim.Idle, time.Since(idleFrom), "closed after exactly the idle timeout")

		require.NoError(t, srv.Close())
		assert.ErrorIs(t, <-served, http.ErrServerClosed)
	})
}

// TestHTTPServerBoundsConnections: with MaxConns open connections, one
// more waits, unserved, until one of them closes; then it is served.
func TestHTTPServerBoundsConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		lim := httpLimits{ReadHeader: time.Minute, Read: time.Minute, Write: time.Minute, Idle: time.Hour, MaxConns: 2}
		var requests atomic.Int32
		srv, limited := newHTTPServer(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			requests.Add(1)
			_, _ = io.WriteString(w, "ok")
		}), lim, slog.New(slog.DiscardHandler))
		served := make(chan error, 1)
		go func() { served <- srv.Serve(limited) }()

		var open []net.Conn
		for range lim.MaxConns {
			c := ln.dial()
			assert.Equal(t, "ok", get(t, c, bufio.NewReader(c), "/"))
			open = append(open, c) // kept alive, idle: it holds its slot
		}
		extra := ln.dial()
		defer extra.Close()
		answer := make(chan string, 1)
		go func() {
			_, err := io.WriteString(extra, "GET / HTTP/1.1\r\nHost: node\r\n\r\n")
			if err != nil {
				answer <- err.Error()
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(extra), nil)
			if err != nil {
				answer <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			answer <- string(body)
		}()
		synctest.Wait() // everything is blocked: the extra connection waits
		assert.Equal(t, int32(lim.MaxConns), requests.Load(), "the connection beyond the bound is not served")
		select {
		case a := <-answer:
			t.Fatalf("the connection beyond the bound got an answer: %q", a)
		default:
		}

		require.NoError(t, open[0].Close())
		assert.Equal(t, "ok", <-answer, "served once a slot is free")
		assert.Equal(t, int32(lim.MaxConns+1), requests.Load())

		for _, c := range open[1:] {
			_ = c.Close()
		}
		require.NoError(t, srv.Close())
		assert.ErrorIs(t, <-served, http.ErrServerClosed)
	})
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestHTTPServerErrorsAreNotAuditLines: the server's own error (here a
// handler's superfluous WriteHeader) is logged through the node's
// logger as a warning with "component":"http", in a log shared with a
// coordinator's audit lines; rolefsm replay passes over it and replays
// the audit line only.
func TestHTTPServerErrorsAreNotAuditLines(t *testing.T) {
	var stderr syncBuffer
	logger := slog.New(slog.NewJSONHandler(&stderr, nil))
	c, err := rolefsm.NewCoordinator(rolefsm.WithName("orders"), rolefsm.WithLogger(logger))
	require.NoError(t, err)
	_, err = c.Transition(context.Background(), rolefsm.Replica, rolefsm.CapabilitySelected)
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, limited := newHTTPServer(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.WriteHeader(http.StatusTeapot) // superfluous: the server logs it
	}), defaultHTTPLimits, logger)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(limited) }()
	defer func() {
		require.NoError(t, srv.Close())
		assert.ErrorIs(t, <-served, http.ErrServerClosed)
	}()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/status")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	client.CloseIdleConnections()

	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	require.Len(t, lines, 2, stderr.String())
	var audit, server map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &audit))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &server))
	assert.Equal(t, "Replica", audit["to"])
	assert.Nil(t, audit["component"])
	assert.Equal(t, "http", server["component"])
	assert.Equal(t, "WARN", server["level"])
	assert.Contains(t, server["msg"], "http: superfluous response.WriteHeader call")
	for _, field := range []string{"to", "signal", "from", "generation", "name"} {
		assert.NotContains(t, server, field, "an audit field in the server's line")
	}

	var out bytes.Buffer
	code, err := replay(strings.NewReader(stderr.String()), nil, "orders", &out)
	require.NoError(t, err, out.String())
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out.String(), "replayed 1 step, skipped 1 line")
}

// TestHTTPErrorLogLevel: the ErrorLog writes at warn level, one record
// a line printed.
func TestHTTPErrorLogLevel(t *testing.T) {
	var buf bytes.Buffer
	httpErrorLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))).Print("http: Accept error")
	assert.Empty(t, buf.String(), "below the handler's level: warn, not error")
	httpErrorLog(slog.New(slog.NewJSONHandler(&buf, nil))).Printf("http: Accept error: %v; retrying in 5ms", errors.New("too many open files"))
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	assert.Equal(t, "WARN", line["level"])
	assert.Equal(t, "http: Accept error: too many open files; retrying in 5ms", line["msg"])
	assert.Equal(t, "http", line["component"])
}

// TestSnapshotBoundsReadings: /status and /readyz read the node at most
// once per maxAge, however many requests come; a clock stepped back
// reads again.
func TestSnapshotBoundsReadings(t *testing.T) {
	now := time.Unix(1000, 0)
	readings := 0
	s := &snapshot{maxAge: 250 * time.Millisecond, now: func() time.Time { return now }, compute: func() ([]byte, error) {
		readings++
		return []byte(fmt.Sprint(readings)), nil
	}}
	for range 100 {
		body, err := s.get()
		require.NoError(t, err)
		assert.Equal(t, "1", string(body))
	}
	now = now.Add(249 * time.Millisecond)
	body, _ := s.get()
	assert.Equal(t, "1", string(body))
	now = now.Add(time.Millisecond)
	body, _ = s.get()
	assert.Equal(t, "2", string(body), "stale at maxAge")
	now = now.Add(-time.Second)
	body, _ = s.get()
	assert.Equal(t, "3", string(body), "a clock stepped back reads again")

	// -status-max-age 0: a reading per request, on the same clock.
	s.maxAge = 0
	body, _ = s.get()
	assert.Equal(t, "4", string(body))
	body, _ = s.get()
	assert.Equal(t, "5", string(body))
}
