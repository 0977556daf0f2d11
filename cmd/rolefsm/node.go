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
	"slices"
	"strconv"
	"strings"
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
			func() float64 { return float64(el.Stats().StepDowns) }))
	return cs
}

const nodeSynopsis = `node -id N -listen ADDR [-peers ID=ADDR@PUBLICKEY,... | -peers-file FILE] -channels LIST|-channels-n N
        (-key-file FILE | -insecure) [-http ADDR] [-heartbeat 500ms] [-miss 3] [-policy tail|upstream]
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
	etcd      []string // endpoints: etcd elects (-election etcd)
	etcdConn  etcdAccess
	etcdTTL   time.Duration
	etcdPfx   string
}

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
	fail := func(err error) int {
		fmt.Fprintln(stderr, "rolefsm node:", userError(err))
		return exitRejected
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

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
		Channels: cfg.channels, Heartbeat: cfg.heartbeat, Policy: cfg.policy, Logger: logger, OnError: drops.Observe,
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
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(status(s, el))
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
	// Etcd is there with -election etcd only.
	Etcd *rolefsmetcd.Stats `json:"etcd,omitempty"`
}

type channelStatus struct {
	Name       string         `json:"name"`
	Role       string         `json:"role"`
	Generation uint64         `json:"generation"`
	Leader     replica.NodeID `json:"leader"`
	Tail       uint64         `json:"tail"`
	// Token is the etcd fencing token of a leader's term (-election etcd).
	Token *rolefsmetcd.Token `json:"token,omitempty"`
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
		cs := channelStatus{Name: c.Channel, Role: c.Role.String(), Generation: c.Generation, Leader: c.Leader, Tail: c.Tail}
		if el != nil && c.Role == rolefsm.Leader {
			if tok, ok := el.Token(c.Channel); ok {
				cs.Token = &tok
			}
		}
		st.Channels = append(st.Channels, cs)
	}
	return st
}

// parseNode reads the command line; it returns the exit code to stop
// with, or -1 to go on.
func parseNode(args []string, stderr io.Writer) (nodeConfig, int) {
	fs := newFlagSet("node", nodeSynopsis, stderr)
	id := fs.Uint64("id", 0, "this node's id, 1 or more (required)")
	listen := fs.String("listen", "", "UDP address to listen on, such as 127.0.0.1:7001 (required)")
	peers := fs.String("peers", "", "the other nodes: ID=ADDR@PUBLICKEY (ID=ADDR with -insecure), comma-separated")
	peersFile := fs.String("peers-file", "", "the other nodes, one a line: ID ADDR PUBLICKEY [PUBLICKEY]")
	channels := fs.String("channels", "", "channel names, comma-separated")
	channelsN := fs.Int("channels-n", 0, "also hold N channels named ch00001, ch00002, ...")
	keyFile := fs.String("key-file", "", "this node's private key file, mode 0600 (rolefsm keygen -out FILE)")
	insecure := fs.Bool("insecure", false, "run without keys: heartbeats unauthenticated, in the clear, anyone can speak as any node")
	httpAddr := fs.String("http", "", "TCP address for GET /status and GET /metrics (none if empty)")
	pprofOn := fs.Bool("pprof", false, "also serve Go's profiles under /debug/pprof/ on -http")
	interval := fs.Duration("heartbeat", policy.DefaultInterval, "heartbeat interval, at least "+policy.MinInterval.String())
	miss := fs.Int("miss", policy.DefaultMissThreshold, "missed heartbeats before a leader is presumed gone")
	pol := fs.String("policy", "tail", "election policy: tail or upstream")
	election := fs.String("election", "heartbeat", "who elects leaders: heartbeat (the nodes) or etcd")
	etcdEndpoints := fs.String("etcd", "", "etcd endpoints, comma-separated: HOST:PORT, http://HOST:PORT or https://HOST:PORT (with -election etcd)")
	etcdConn := etcdFlags{
		ca:           fs.String("etcd-ca", "", "the CA bundle (PEM) to verify etcd's certificate with; TLS (default: the system's CAs with https://)"),
		cert:         fs.String("etcd-cert", "", "the client certificate (PEM) to present to etcd, with -etcd-key; TLS"),
		key:          fs.String("etcd-key", "", "the client certificate's key (PEM), with -etcd-cert"),
		user:         fs.String("etcd-user", "", "the etcd user to authenticate as; its password from -etcd-password-file or $"+etcdPasswordEnv),
		passwordFile: fs.String("etcd-password-file", "", "the file holding -etcd-user's password, one line, readable by its owner only"),
	}
	etcdTTL := fs.Duration("etcd-ttl", 10*time.Second, "the etcd session's TTL, whole seconds: a killed leader holds office this long")
	etcdPrefix := fs.String("etcd-prefix", rolefsmetcd.DefaultPrefix, "the key prefix of the elections in etcd")
	if code := parseFlags(fs, args); code >= 0 {
		return nodeConfig{}, code
	}
	bad := func(format string, a ...any) (nodeConfig, int) {
		fmt.Fprintln(stderr, "rolefsm node:", userError(fmt.Errorf(format, a...)))
		return nodeConfig{}, exitUsage
	}
	if fs.NArg() != 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	cfg := nodeConfig{id: replica.NodeID(*id), listen: *listen, insecure: *insecure, http: *httpAddr, pprof: *pprofOn,
		peers: map[replica.NodeID]udp.Peer{}}
	switch {
	case *id == 0:
		return bad("-id: give this node's id, 1 or more")
	case *listen == "":
		return bad("-listen: give the UDP address to listen on")
	case *interval < policy.MinInterval:
		return bad("-heartbeat %v: at least %v", *interval, policy.MinInterval)
	case *miss < 1:
		return bad("-miss %d: at least 1", *miss)
	case *pprofOn && *httpAddr == "":
		return bad("-pprof: give -http to serve the profiles on")
	case *channelsN < 0 || *channelsN > 1_000_000:
		return bad("-channels-n %d: from 0 to 1000000", *channelsN)
	case *keyFile == "" && !*insecure:
		return bad("no key: give -key-file (rolefsm keygen -out FILE makes one), or -insecure to run unauthenticated on purpose")
	case *keyFile != "" && *insecure:
		return bad("-key-file and -insecure: choose one")
	case *election != "heartbeat" && *election != "etcd":
		return bad("-election %q: heartbeat or etcd", *election)
	case *election == "etcd" && strings.TrimSpace(*etcdEndpoints) == "":
		return bad("-election etcd: give -etcd HOST:PORT")
	case *election != "etcd" && *etcdEndpoints != "":
		return bad("-etcd: only with -election etcd")
	case *election != "etcd" && etcdConn.given() != "":
		return bad("%s: only with -election etcd", etcdConn.given())
	case *etcdTTL < 2*time.Second || *etcdTTL%time.Second != 0:
		return bad("-etcd-ttl %v: whole seconds, 2s or more", *etcdTTL)
	case *etcdPrefix == "" || strings.HasSuffix(*etcdPrefix, "/"):
		return bad("-etcd-prefix %q: not empty, no trailing /", *etcdPrefix)
	}
	cfg.etcdTTL, cfg.etcdPfx = *etcdTTL, *etcdPrefix
	if *election == "etcd" {
		var err error
		if cfg.etcd, cfg.etcdConn, err = etcdConn.parse(*etcdEndpoints, *etcdPrefix, os.Getenv); err != nil {
			return bad("%v", err)
		}
	}
	if *peers != "" && *peersFile != "" {
		return bad("-peers and -peers-file: choose one")
	}
	var lines []peerLine
	if *peers != "" {
		for _, p := range strings.Split(*peers, ",") {
			lines = append(lines, peerLine{where: "-peers", text: strings.TrimSpace(p), flag: true})
		}
	}
	if *peersFile != "" {
		data, err := os.ReadFile(*peersFile)
		if err != nil {
			return bad("-peers-file: %v", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				lines = append(lines, peerLine{where: fmt.Sprintf("-peers-file %s line %d", *peersFile, i+1), text: line})
			}
		}
	}
	for _, l := range lines {
		pid, peer, err := l.parse(*insecure)
		switch {
		case err != nil:
			return bad("%s: %v", l.where, err)
		case pid == cfg.id:
			return bad("%s: %q: that is this node's own id", l.where, l.text)
		}
		if _, dup := cfg.peers[pid]; dup {
			return bad("%s: node %d twice", l.where, pid)
		}
		cfg.peers[pid] = peer
		cfg.peerIDs = append(cfg.peerIDs, pid)
	}
	seen := map[string]bool{}
	add := func(name string) error {
		switch {
		case name == "":
			return errors.New("-channels: an empty channel name")
		case len(name) > udp.MaxChannelName:
			return fmt.Errorf("-channels: a name of %d bytes, at most %d", len(name), udp.MaxChannelName)
		case name == rolefsmprom.OverflowChannel:
			return fmt.Errorf("-channels: %q is reserved for the metrics' overflow", name)
		case seen[name]:
			return fmt.Errorf("-channels: %q twice", name)
		}
		seen[name] = true
		cfg.channels = append(cfg.channels, name)
		return nil
	}
	if *channels != "" {
		for _, name := range strings.Split(*channels, ",") {
			if err := add(strings.TrimSpace(name)); err != nil {
				return bad("%v", err)
			}
		}
	}
	for i := 1; i <= *channelsN; i++ {
		if err := add(fmt.Sprintf("ch%05d", i)); err != nil {
			return bad("%v", err)
		}
	}
	if len(cfg.channels) == 0 {
		return bad("no channel: give -channels or -channels-n")
	}
	if *keyFile != "" {
		var err error
		if cfg.key, err = udp.LoadPrivateKey(*keyFile); err != nil {
			return bad("-key-file: %v", err)
		}
		for id, p := range cfg.peers {
			if slices.Contains(p.Keys, cfg.key.Public()) {
				return bad("-peers: node %d has this node's own public key", id)
			}
		}
	}
	var err error
	if cfg.heartbeat, err = policy.NewHeartbeat(*interval, *miss); err != nil {
		return bad("%v", err)
	}
	if cfg.policy, err = policy.ParsePolicy(strings.ToLower(*pol)); err != nil {
		return bad("-policy: %v", err)
	}
	return cfg, -1
}

// peerLine is one peer as given: ID=ADDR@KEY[@KEY] in -peers, or
// ID ADDR KEY [KEY] in -peers-file.
type peerLine struct {
	where, text string
	flag        bool
}

// parse reads the line: a peer's id, address and public keys (one, or
// two while its key is replaced; none when insecure).
func (l peerLine) parse(insecure bool) (replica.NodeID, udp.Peer, error) {
	var idText, addr string
	var keys []string
	if l.flag {
		var ok bool
		idText, addr, ok = strings.Cut(l.text, "=")
		if !ok || addr == "" {
			return 0, udp.Peer{}, fmt.Errorf("%q is not ID=ADDR@PUBLICKEY", l.text)
		}
		parts := strings.Split(addr, "@")
		addr, keys = parts[0], parts[1:]
	} else {
		f := strings.Fields(l.text)
		if len(f) < 2 {
			return 0, udp.Peer{}, fmt.Errorf("%q is not ID ADDR PUBLICKEY", l.text)
		}
		idText, addr, keys = f[0], f[1], f[2:]
	}
	pid, err := strconv.ParseUint(idText, 10, 64)
	if err != nil || pid == 0 {
		return 0, udp.Peer{}, fmt.Errorf("%q: the id must be a number, 1 or more", l.text)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return 0, udp.Peer{}, fmt.Errorf("%q: %q is not HOST:PORT", l.text, addr)
	}
	p := udp.Peer{Addr: addr}
	switch {
	case insecure && len(keys) > 0:
		return 0, udp.Peer{}, fmt.Errorf("%q: a public key, but -insecure uses none", l.text)
	case !insecure && len(keys) == 0:
		return 0, udp.Peer{}, fmt.Errorf("%q: no public key (rolefsm keygen prints it; rolefsm pubkey shows it again)", l.text)
	case len(keys) > 2:
		return 0, udp.Peer{}, fmt.Errorf("%q: %d public keys, at most 2 (the old and the new, while a key is replaced)", l.text, len(keys))
	}
	for _, k := range keys {
		pub, err := udp.ParsePublicKey(k)
		if err != nil {
			return 0, udp.Peer{}, fmt.Errorf("%q: %w", l.text, err)
		}
		if slices.Contains(p.Keys, pub) {
			return 0, udp.Peer{}, fmt.Errorf("%q: the same public key twice", l.text)
		}
		p.Keys = append(p.Keys, pub)
	}
	return replica.NodeID(pid), p, nil
}
