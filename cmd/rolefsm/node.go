package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
	"github.com/rolefsm/rolefsm/rolefsmetcd"
	"github.com/rolefsm/rolefsm/rolefsmprom"
	"github.com/rolefsm/rolefsm/server"
)

// etcdCollector exports an elector's requests to etcd.
func etcdCollector(el *rolefsmetcd.Elector) []prometheus.Collector {
	kinds := []struct {
		kind string
		read func(rolefsmetcd.Stats) uint64
	}{
		{"grant", func(s rolefsmetcd.Stats) uint64 { return s.Grants }},
		{"keepalive", func(s rolefsmetcd.Stats) uint64 { return s.KeepAlives }},
		{"keepalive_stream", func(s rolefsmetcd.Stats) uint64 { return s.KeepAliveStreams }},
		{"txn", func(s rolefsmetcd.Stats) uint64 { return s.Txns }},
		{"range", func(s rolefsmetcd.Stats) uint64 { return s.Ranges }},
		{"watch", func(s rolefsmetcd.Stats) uint64 { return s.Watches }},
		{"revoke", func(s rolefsmetcd.Stats) uint64 { return s.Revokes }},
	}
	var cs []prometheus.Collector
	for _, k := range kinds {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rolefsm_etcd_requests_total", Help: "Requests this node made to etcd, by kind.",
			ConstLabels: prometheus.Labels{"kind": k.kind},
		}, func() float64 { return float64(k.read(el.Stats())) }))
	}
	cs = append(cs,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rolefsm_etcd_failed_requests_total",
			Help: "Requests to etcd that returned an error."}, func() float64 { return float64(el.Stats().Failed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rolefsm_etcd_stale_session_step_downs_total",
			Help: "Times a leader left office because its etcd session could not be renewed in time."},
			func() float64 { return float64(el.Stats().StepDowns) }),
		keepAliveWait{el: el, desc: prometheus.NewDesc("rolefsm_etcd_keepalive_wait_seconds",
			"Round trips of the keep-alives etcd answered, from the request's send to its answer.", nil, nil)},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rolefsm_etcd_session_valid",
			Help: "1 while the node may act on its etcd session (a keep-alive succeeded within TTL - margin), 0 otherwise."},
			func() float64 {
				if el.Ready() != nil {
					return 0
				}
				return 1
			}))
	return cs
}

// keepAliveWait exports an elector's keep-alive round trips as a
// summary: their count and sum, no quantiles.
type keepAliveWait struct {
	el   *rolefsmetcd.Elector
	desc *prometheus.Desc
}

func (k keepAliveWait) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k keepAliveWait) Collect(ch chan<- prometheus.Metric) {
	s := k.el.Stats()
	ch <- prometheus.MustNewConstSummary(k.desc, s.KeepAlivesAnswered, s.KeepAliveWait.Seconds(), nil)
}

const nodeSynopsis = `node -id N -listen ADDR [-peers ID=ADDR@PUBLICKEY,... | -peers-file FILE] -channels LIST|-channels-n N
        (-key-file FILE | -insecure) [-http ADDR [-admin]] [-heartbeat 500ms] [-miss 3] [-policy tail|upstream] [-evidence peers|own]
        [-election heartbeat|etcd -etcd ENDPOINT,... [-etcd-ttl 10s] [-etcd-prefix /rolefsm/election]
          [-etcd-ca FILE] [-etcd-cert FILE -etcd-key FILE] [-etcd-user NAME [-etcd-password-file FILE]]]

Runs one replica node: every channel's replica set is this node and all
its peers; heartbeats travel over UDP, on a Noise session with each peer,
so that each node speaks only as itself. -key-file is this node's private
key (rolefsm keygen -out FILE makes one, mode 0600, and prints its public
key); each peer is ID=ADDR@PUBLICKEY (two keys, @OLD@NEW, while a peer's
key is replaced), or a line "ID ADDR PUBLICKEY [PUBLICKEY]" of
-peers-file. The coordinators' audit lines go to stderr as JSON, readable by
"rolefsm replay -name CHANNEL". On -http: GET /status (JSON) and GET
/metrics (Prometheus). SIGTERM or SIGINT: leaders relinquish, every
channel closes, the peers are told at once, exit 0. The first line on
stdout is "rolefsm node ID listening: udp=ADDR http=ADDR".

With -election etcd, etcd decides every channel's leader (one session for
the node, a campaign per channel under -etcd-prefix); heartbeats still
carry tails and health. An ENDPOINT is HOST:PORT, http://HOST:PORT or
https://HOST:PORT; https:// or a TLS flag means TLS. -etcd-user's
password comes from -etcd-password-file (mode 0600) or $ROLEFSM_ETCD_PASSWORD.
etcd unreachable at start: exit 1, naming it; refused credentials or a
failed TLS handshake: exit 1, saying so.`

// nodeConfig is a node's command line, checked.
type nodeConfig struct {
	id        replica.NodeID
	listen    string
	peers     map[replica.NodeID]udp.Peer
	peerIDs   []replica.NodeID // in the order given
	channels  []string
	key       udp.PrivateKey
	insecure  bool
	http      string
	pprof     bool
	heartbeat policy.Heartbeat
	policy    policy.Policy
	evidence  replica.Evidence
	admin     bool
	statusAge time.Duration
	etcd      []string // endpoints: etcd elects (-election etcd)
	etcdConn  etcdAccess
	etcdTTL   time.Duration
	etcdPfx   string
}

// logQueue is how many log lines may wait for stderr.
const logQueue = 8192

func runNode(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return node(ctx, args, stdout, stderr)
}

// node runs a node until ctx ends (the signal), then leaves gracefully.
func node(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code := parseNode(args, stderr)
	if code >= 0 {
		return code
	}
	// Every log line (the audit lines, the warnings) goes to stderr
	// through a bounded queue: a stderr that does not keep up (a pipe
	// nobody reads) drops lines, counted in rolefsm_log_dropped_total,
	// and never stalls the node's heartbeats.
	logs := rolefsm.NewAsyncHandler(slog.NewJSONHandler(stderr, nil), logQueue)
	defer logs.Close() // written out before the process exits
	logger := slog.New(logs)
	fail := func(err error) int {
		logs.Close() // the queued lines first, and no writer beside this one
		fmt.Fprintln(stderr, "rolefsm node:", userError(err))
		return exitRejected
	}

	var ln net.Listener
	var err error
	if cfg.http != "" {
		if ln, err = net.Listen("tcp", cfg.http); err != nil {
			return fail(err)
		}
		defer ln.Close()
	}
	drops := rolefsmprom.NewDriverErrors(nil)
	scfg := server.Config{ID: cfg.id, Listen: cfg.listen, Key: cfg.key, Insecure: cfg.insecure, Peers: cfg.peers,
		Channels: cfg.channels, Heartbeat: cfg.heartbeat, Policy: cfg.policy, Evidence: cfg.evidence, Logger: logger, OnError: drops.Observe,
		Options: []rolefsm.Option{rolefsm.WithLogger(logger)}}
	var el *rolefsmetcd.Elector
	if cfg.etcd != nil {
		cli, err := clientv3.New(cfg.etcdConn.clientConfig(cfg.etcd))
		if err != nil {
			return fail(cfg.etcdConn.explain(ctx, cfg.etcd, err))
		}
		defer cli.Close()
		scfg.Election = func(d *replica.Driver) (server.Election, error) {
			var err error
			el, err = rolefsmetcd.New(ctx, rolefsmetcd.Config{Client: cli, TTL: cfg.etcdTTL, Prefix: cfg.etcdPfx,
				OnError: func(err error) { logger.Warn("etcd", "error", err.Error()) }}, d)
			if err != nil {
				return nil, cfg.etcdConn.explain(ctx, cfg.etcd, err)
			}
			return el, nil
		}
	}
	s, err := server.New(scfg)
	if err != nil {
		return fail(err)
	}
	set := rolefsmprom.NewSet()
	for _, name := range cfg.channels {
		if _, err := set.Add(s.Coordinator(name)); err != nil {
			_ = s.Close()
			return fail(err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(set, drops, rolefsmprom.NewTransportCollector(s.Transport()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rolefsm_log_dropped_total",
			Help: "Log lines (audit lines and warnings) dropped because stderr did not keep up."},
			func() float64 { return float64(logs.Dropped()) }))
	if el != nil {
		reg.MustRegister(etcdCollector(el)...)
	}
	httpAddr := "none"
	var srv *http.Server
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var serveErr error
	serveDone := make(chan struct{})
	if ln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if cfg.pprof {
			mux.HandleFunc("GET /debug/pprof/", pprof.Index)
			mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		}
		if cfg.admin {
			mux.HandleFunc("POST /channels/{name}/relinquish", handover(runCtx, s, (*replica.Node).Relinquish))
			mux.HandleFunc("POST /channels/{name}/rejoin", handover(runCtx, s, (*replica.Node).Rejoin))
		}
		snap := &snapshot{maxAge: cfg.statusAge, now: time.Now, compute: func() ([]byte, error) {
			body, err := json.Marshal(status(s, el))
			if err != nil {
				return nil, err
			}
			return append(body, '\n'), s.Ready()
		}}
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			body, _ := snap.get()
			_, _ = w.Write(body)
		})
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok\n") // the process serves
		})
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
			if _, err := snap.get(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, userError(err)+"\n")
				return
			}
			_, _ = io.WriteString(w, "ready\n")
		})
		srv, ln = newHTTPServer(ln, mux, defaultHTTPLimits, logger)
		httpAddr = ln.Addr().String()
		go func() {
			defer close(serveDone)
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr = err
				stop() // the node stops with its server
			}
		}()
	} else {
		close(serveDone)
	}
	fmt.Fprintf(stdout, "rolefsm node %d listening: udp=%s http=%s\n", cfg.id, s.Addr(), httpAddr)
	logger.Info("listening", "id", cfg.id, "http", httpAddr, "policy", cfg.policy.Name(),
		"election", map[bool]string{false: "heartbeat", true: "etcd"}[el != nil])

	runErr := s.Run(runCtx) // until the signal (or the HTTP server fails); then a graceful leave
	if srv != nil {
		shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = srv.Shutdown(shutdown)
	}
	<-serveDone
	switch {
	case serveErr != nil:
		return fail(serveErr)
	case runErr != nil:
		return fail(runErr)
	}
	return exitOK
}

// nodeStatus is GET /status's body.
type nodeStatus struct {
	ID replica.NodeID `json:"id"`
	// Insecure says the node runs without keys; PublicKey is its key
	// otherwise, as its peers must be given it.
	Insecure  bool            `json:"insecure"`
	PublicKey string          `json:"public_key,omitempty"`
	Channels  []channelStatus `json:"channels"`
	Peers     []peerStatus    `json:"peers"`
	// Etcd is there with -election etcd only.
	Etcd *rolefsmetcd.Stats `json:"etcd,omitempty"`
}

type channelStatus struct {
	Name       string         `json:"name"`
	Role       string         `json:"role"`
	Generation uint64         `json:"generation"`
	Leader     replica.NodeID `json:"leader"`
	Tail       uint64         `json:"tail"`
	// CutOff: a Replica that has not heard its leader for the timeout
	// waits, because a member of the replica set still hears it (or,
	// once that leader left office, says it has a live leader);
	// Vouched is the latest contact a member reports (or the latest
	// such entry).
	CutOff  bool       `json:"cut_off,omitempty"`
	Vouched *time.Time `json:"vouched,omitempty"`
	// Lossy: the leader's heartbeats have lately been lost on the way
	// here, so the Replica waits two timeouts before it stands.
	Lossy bool `json:"lossy,omitempty"`
	// Token is the etcd fencing token of a leader's term (-election etcd).
	Token *rolefsmetcd.Token `json:"token,omitempty"`
}

// peerStatus is one peer in GET /status: whether it was ever heard,
// and if not, what came from its address.
type peerStatus struct {
	ID   replica.NodeID `json:"id"`
	Addr string         `json:"addr"`
	// Heard says a batch of its ever arrived; LastHeard is when the
	// latest did, Healthy whether that was within the heartbeat
	// timeout (with -election etcd, within 20 intervals and the
	// timeout: replica.PeerStatus).
	Heard     bool       `json:"heard"`
	LastHeard *time.Time `json:"last_heard,omitempty"`
	Healthy   bool       `json:"healthy"`
	// RTTms is the latest round trip measured, in milliseconds.
	RTTms *float64 `json:"rtt_ms,omitempty"`
	// Session says a session with it is up; HandshakesUnanswered counts
	// this node's initiations to it unanswered in a row.
	Session              bool `json:"session"`
	HandshakesUnanswered int  `json:"handshakes_unanswered"`
	// AuthFailures counts the datagrams from its address that failed
	// authentication; Dropped every drop from its address, by reason.
	AuthFailures uint64            `json:"auth_failures"`
	Dropped      map[string]uint64 `json:"dropped"`
}

func status(s *server.Server, el *rolefsmetcd.Elector) nodeStatus {
	ss := s.Status()
	st := nodeStatus{ID: ss.ID, Insecure: ss.Insecure, Channels: make([]channelStatus, 0, len(ss.Channels))}
	if !ss.Insecure {
		st.PublicKey = ss.PublicKey.String()
	}
	if el != nil {
		es := el.Stats()
		st.Etcd = &es
	}
	for _, c := range ss.Channels {
		cs := channelStatus{Name: c.Channel, Role: c.Role.String(), Generation: c.Generation, Leader: c.Leader, Tail: c.Tail, CutOff: c.CutOff, Lossy: c.Lossy}
		if !c.Vouched.IsZero() {
			v := c.Vouched.UTC()
			cs.Vouched = &v
		}
		if el != nil && c.Role == rolefsm.Leader {
			if tok, ok := el.Token(c.Channel); ok {
				cs.Token = &tok
			}
		}
		st.Channels = append(st.Channels, cs)
	}
	st.Peers = make([]peerStatus, 0, len(ss.Peers))
	for _, p := range ss.Peers {
		ps := peerStatus{ID: p.ID, Addr: p.Transport.Addr, Heard: p.Heard, Healthy: p.Healthy,
			Session: p.Transport.Session, HandshakesUnanswered: p.Transport.Handshakes,
			AuthFailures: p.Transport.Dropped[udp.BadTag], Dropped: map[string]uint64{}}
		if p.Heard {
			at := p.LastHeard.UTC()
			ps.LastHeard = &at
		}
		if p.HasRTT {
			ms := float64(p.RTT.Microseconds()) / 1000
			ps.RTTms = &ms
		}
		for _, r := range udp.Reasons() {
			if n := p.Transport.Dropped[r]; n > 0 {
				ps.Dropped[r.String()] = n
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

// handover serves one of -admin's POSTs: act on the channel named in the
// path, on the node's goroutine. 404 for a channel the node does not
// hold, 409 for one it does not lead (relinquish), 200 otherwise.
func handover(ctx context.Context, s *server.Server,
	act func(n *replica.Node, ctx context.Context, now time.Time, name string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		err := s.Driver().Do(func(n *replica.Node, now time.Time) error { return act(n, ctx, now, name) })
		switch {
		case errors.Is(err, replica.ErrUnknownChannel):
			w.WriteHeader(http.StatusNotFound)
		case errors.Is(err, replica.ErrNotLeader):
			w.WriteHeader(http.StatusConflict)
		case err != nil:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		_, _ = io.WriteString(w, userError(err)+"\n")
	}
}
