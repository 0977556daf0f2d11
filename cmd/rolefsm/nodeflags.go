package main

// The command line of rolefsm node: its flags, checked, and the peers' syntax.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
	"github.com/rolefsm/rolefsm/rolefsmetcd"
	"github.com/rolefsm/rolefsm/rolefsmprom"
)

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
	statusAge := fs.Duration("status-max-age", statusMaxAge, "how old a reading of the node GET /status and /readyz may answer from; 0 reads it on every request (a benchmark's setting: each reading locks the node)")
	admin := fs.Bool("admin", false, "also serve POST /channels/NAME/relinquish and /channels/NAME/rejoin on -http: an operator's handover (whoever reaches -http can use them)")
	interval := fs.Duration("heartbeat", policy.DefaultInterval, "heartbeat interval, at least "+policy.MinInterval.String())
	miss := fs.Int("miss", policy.DefaultMissThreshold, "missed heartbeats before a leader is presumed gone, 2 or more")
	allowMiss1 := fs.Bool("allow-miss-1", false, "accept -miss 1, which deposes a live leader on one late heartbeat")
	pol := fs.String("policy", "tail", "election policy: tail or upstream")
	evid := fs.String("evidence", "", "what a replica weighs before it stands: peers (its replica set's reports: it stands only when none hears the leader) or own (its own silence, upstream's rule); default peers, own with -policy upstream")
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
		return nodeConfig{}, usageError(fs, fmt.Errorf(format, a...))
	}
	if fs.NArg() != 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	cfg := nodeConfig{id: replica.NodeID(*id), listen: *listen, insecure: *insecure, http: *httpAddr, pprof: *pprofOn, admin: *admin, statusAge: *statusAge,
		peers: map[replica.NodeID]udp.Peer{}}
	switch {
	case *id == 0:
		return bad("-id: give this node's id, 1 or more")
	case *listen == "":
		return bad("-listen: give the UDP address to listen on")
	case *interval < policy.MinInterval:
		return bad("-heartbeat %v: at least %v", *interval, policy.MinInterval)
	case *miss < 1:
		return bad("-miss %d: at least 2", *miss)
	case *miss == 1 && !*allowMiss1:
		return bad("-miss 1: one late or lost heartbeat deposes a live leader (docs/simulation.md: under jitter, two leaders at once); " +
			"2 or more, or -allow-miss-1 to run with it anyway")
	case *pprofOn && *httpAddr == "":
		return bad("-pprof: give -http to serve the profiles on")
	case *statusAge < 0:
		return bad("-status-max-age %v: 0 or more", *statusAge)
	case *admin && *httpAddr == "":
		return bad("-admin: give -http to serve the handover on")
	case *admin && *election == "etcd":
		return bad("-admin: with -election etcd, etcd decides who leads; hand over by stopping the node (SIGTERM)")
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
	if *evid != "" {
		if cfg.evidence, err = replica.ParseEvidence(strings.ToLower(*evid)); err != nil {
			return bad("-evidence: %v", err)
		}
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
	// Resolved as the transport will resolve it at start, so that a
	// bad host or port is a usage error naming its flag.
	ua, err := net.ResolveUDPAddr("udp", addr)
	switch {
	case err != nil:
		return 0, udp.Peer{}, fmt.Errorf("%q: %w", l.text, err)
	case ua.Port == 0:
		return 0, udp.Peer{}, fmt.Errorf("%q: port 0 is no peer's port", l.text)
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
