// Package server assembles a whole replica node that a service embeds:
// the UDP transport with its keys, the Node holding the channels, the
// Driver, and optionally an election backend such as rolefsmetcd's;
// and it orders their shutdown (goodbyes first, then the backend, then
// the driver, then the socket). hashicorp/raft's NewRaft is the model:
// one configuration, then Run.
//
//	s, err := server.New(server.Config{ID: 1, Listen: "10.0.0.1:7001", Key: key, Peers: peers,
//		Channels: []string{"orders"}, OnStartedLeading: startAppending})
//	...
//	err = s.Run(ctx) // until ctx ends; then the node leaves gracefully
//
// The package imports neither etcd nor Prometheus: a backend comes in
// through Config.Election, and metrics through the accessors
// (Coordinator, Transport) that rolefsmprom's collectors read.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/policy"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// Config configures a Server.
type Config struct {
	// ID is this node's id, 1 or more.
	ID replica.NodeID
	// Listen is the UDP address to listen on (port 0 picks one: see
	// Addr); Conn, if set, is an open socket to use instead.
	Listen string
	Conn   *net.UDPConn
	// Key is this node's private key; Insecure runs without one (see
	// udp.Config).
	Key      udp.PrivateKey
	Insecure bool
	// Peers are the other nodes. Every channel's replica set is this
	// node and all of them.
	Peers map[replica.NodeID]udp.Peer
	// Channels are the channels the node holds, opened by New.
	Channels []string
	// Heartbeat and Policy are the election rules (defaults: 500 ms ×
	// 3, policy.HighestTail).
	Heartbeat policy.Heartbeat
	Policy    policy.Policy
	// Evidence is what a Replica weighs before it stands (default:
	// the replica set's reports, or its own silence under
	// policy.Upstream; see replica.Config).
	Evidence replica.Evidence
	// Options are given to every channel's coordinator (an audit
	// logger with rolefsm.WithLogger, observers).
	Options []rolefsm.Option
	// Logger receives the transport's warnings and the server's own
	// lines (default slog.Default()).
	Logger *slog.Logger
	// OnError receives what the driver reports: the entries and
	// batches the node refused, and failed sends (see
	// replica.DriverOptions).
	OnError func(error)
	// Election, if set, hands leadership to a backend outside the node
	// (the node runs with replica.Config.External): New calls it with
	// the driver once the channels are open. rolefsmetcd.New fits, in
	// a closure that gives it its client.
	Election func(*replica.Driver) (Election, error)
	// OnStartedLeading, if set, is called in a goroutine of its own each
	// time the node takes office on a channel, with the lease of that
	// term and a context that is cancelled when the term ends (the node
	// leaves Leader on that channel, or Run returns): client-go's
	// leaderelection shape, beside Lease and Holds. Run waits for every
	// call to return.
	OnStartedLeading func(ctx context.Context, channel string, lease rolefsm.Lease)
}

// Election is an election backend driving the node (rolefsmetcd's
// Elector is one).
type Election interface {
	// Run runs the backend until ctx ends.
	Run(ctx context.Context) error
	// Leave gives up every office at once and tells the others, for a
	// graceful shutdown.
	Leave(ctx context.Context) error
}

// A backend that also has a method Ready() error (rolefsmetcd's
// Elector does) is asked by Server.Ready.

// ErrBadConfig is matched by every configuration error of New.
var ErrBadConfig = errors.New("server: bad configuration")

// Server is one running replica node.
type Server struct {
	cfg      Config
	tr       *udp.Transport
	node     *replica.Node
	driver   *replica.Driver
	election Election
	log      *slog.Logger

	mu      sync.Mutex
	terms   map[string]context.CancelFunc // the channels led, and how to end their term's context
	running sync.WaitGroup                // OnStartedLeading calls
	ran     bool

	lonelyAt atomic.Int64 // the latest warning of lonely's, UnixNano
}

// New builds the node: it listens, opens every channel, and builds the
// driver and the election backend. Nothing runs until Run; a Server
// that never runs is closed with Close.
func New(cfg Config) (*Server, error) {
	switch {
	case len(cfg.Channels) == 0:
		return nil, fmt.Errorf("%w: no channel", ErrBadConfig)
	case slices.Contains(cfg.Channels, ""):
		return nil, fmt.Errorf("%w: an empty channel name", ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tr, err := udp.New(udp.Config{ID: cfg.ID, Listen: cfg.Listen, Conn: cfg.Conn, Key: cfg.Key, Insecure: cfg.Insecure,
		Peers: cfg.Peers, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, tr: tr, log: cfg.Logger, terms: map[string]context.CancelFunc{}}
	fail := func(err error) (*Server, error) {
		_ = tr.Close()
		return nil, err
	}
	now := time.Now()
	if s.node, err = replica.NewNode(replica.Config{ID: cfg.ID, Heartbeat: cfg.Heartbeat, Policy: cfg.Policy, Evidence: cfg.Evidence,
		External: cfg.Election != nil, Limits: tr.Limits()}, now); err != nil {
		return fail(err)
	}
	replicas := []replica.NodeID{cfg.ID}
	for id := range cfg.Peers {
		replicas = append(replicas, id)
	}
	slices.Sort(replicas)
	for _, name := range cfg.Channels {
		opts := slices.Clone(cfg.Options)
		if cfg.OnStartedLeading != nil {
			opts = append(opts, rolefsm.WithObserver(s.observe))
		}
		if len(cfg.Peers) > 0 {
			opts = append(opts, rolefsm.WithObserver(s.lonely))
		}
		if err := s.node.Open(context.Background(), now, replica.ChannelConfig{Name: name, Replicas: replicas, Options: opts}); err != nil {
			return fail(err)
		}
	}
	s.driver = replica.NewDriver(s.node, tr, replica.DriverOptions{OnError: cfg.OnError})
	if cfg.Election != nil {
		if s.election, err = cfg.Election(s.driver); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// observe starts and ends the terms OnStartedLeading hears of. It runs
// on the goroutine that committed (the driver's, or the backend's
// through Do), with the node locked: it only starts goroutines and
// cancels contexts.
func (s *Server) observe(_ context.Context, r rolefsm.Record) {
	if r.Err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel := s.terms[r.Name]; cancel != nil && r.To != rolefsm.Leader {
		cancel()
		delete(s.terms, r.Name)
	}
	if r.To == rolefsm.Leader && s.terms[r.Name] == nil && s.ran {
		ctx, cancel := context.WithCancel(context.Background())
		s.terms[r.Name] = cancel
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			s.cfg.OnStartedLeading(ctx, r.Name, r.Lease())
		}()
	}
}

// LonelyWarnInterval is the least time between two of a server's
// warnings that it took office without ever hearing a peer.
const LonelyWarnInterval = time.Minute

// lonely warns, at most once a LonelyWarnInterval, when the node takes
// office on a channel while no peer has ever been heard: with a wrong
// address, port or key in its peers' configuration (or theirs), every
// node of a cluster elects itself. The transport is asked, not the node:
// an observer runs under the driver's lock.
func (s *Server) lonely(_ context.Context, r rolefsm.Record) {
	if r.Err != nil || r.To != rolefsm.Leader {
		return
	}
	for _, p := range s.tr.Peers() {
		if p.Delivered > 0 {
			return
		}
	}
	now := time.Now()
	if last := s.lonelyAt.Load(); last != 0 && now.Sub(time.Unix(0, last)) < LonelyWarnInterval {
		return
	}
	s.lonelyAt.Store(now.UnixNano())
	s.log.Warn("took office without ever hearing a peer: check the peers' addresses and keys here and theirs of this node (rolefsm status shows who hears whom)",
		"channel", r.Name, "peers", len(s.cfg.Peers))
}

// Run runs the node until ctx ends, then leaves gracefully: the
// backend (or the driver) gives up every office and says goodbye, the
// backend stops, then the driver, the terms' contexts are cancelled and
// their OnStartedLeading calls waited for, and the socket is closed. It
// returns nil after a graceful leave, or what stopped the node first
// (a transport closed under it, a backend's error).
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return replica.ErrRunning
	}
	s.ran = true
	s.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	driverDone := make(chan error, 1)
	go func() { driverDone <- s.driver.Run(runCtx) }()
	electionDone := make(chan error, 1)
	if s.election != nil {
		go func() { electionDone <- s.election.Run(runCtx) }()
	}
	hb := s.node.Heartbeat()
	s.log.Info("node started", "id", uint64(s.cfg.ID), "udp", s.tr.Addr().String(), "channels", len(s.cfg.Channels),
		"peers", len(s.cfg.Peers), "heartbeat", hb.Interval().String(), "miss", hb.MissThreshold(),
		"election", map[bool]string{false: "heartbeat", true: "external"}[s.election != nil], "insecure", s.cfg.Insecure)

	var err error
	driverEnded, electionEnded := false, s.election == nil
	select {
	case <-ctx.Done():
	case err = <-driverDone:
		driverEnded = true
	case err = <-electionDone:
		electionEnded = true
	}
	if err == nil {
		if lerr := s.Leave(context.Background()); lerr != nil {
			s.log.Warn("goodbye not sent to every peer", "error", lerr.Error())
		}
	}
	cancel()
	if !electionEnded {
		if eerr := <-electionDone; err == nil && eerr != nil && !errors.Is(eerr, context.Canceled) {
			err = eerr
		}
	}
	if !driverEnded {
		if derr := <-driverDone; err == nil {
			err = derr
		}
	}
	s.endTerms()
	if cerr := s.tr.Close(); err == nil && cerr != nil && !errors.Is(cerr, replica.ErrTransportClosed) {
		err = cerr
	}
	if err == nil {
		s.log.Info("node left", "id", uint64(s.cfg.ID))
	}
	return err
}

// endTerms cancels every term's context and waits for the
// OnStartedLeading calls.
func (s *Server) endTerms() {
	s.mu.Lock()
	for name, cancel := range s.terms {
		cancel()
		delete(s.terms, name)
	}
	s.mu.Unlock()
	s.running.Wait()
}

// Leave gives up every office and says goodbye at once (through the
// backend, when there is one, which also tells the others), so that
// the peers fail over on their next tick. Run calls it when its context
// ends; call it yourself to hand over before that.
func (s *Server) Leave(ctx context.Context) error {
	if s.election != nil {
		return s.election.Leave(ctx)
	}
	return s.driver.Leave(ctx)
}

// Close releases a Server that was never run (Run closes its own).
func (s *Server) Close() error {
	s.mu.Lock()
	ran := s.ran
	s.ran = true
	s.mu.Unlock()
	if ran {
		return replica.ErrRunning
	}
	return s.tr.Close()
}

// Addr returns the UDP address the node listens on.
func (s *Server) Addr() net.Addr { return s.tr.Addr() }

// Transport returns the node's transport (for its Stats, or
// rolefsmprom.NewTransportCollector).
func (s *Server) Transport() *udp.Transport { return s.tr }

// Driver returns the node's driver: Do runs a function on the node.
func (s *Server) Driver() *replica.Driver { return s.driver }

// Coordinator returns a channel's coordinator, or nil (for
// rolefsmprom.Set.Add, Lease and Holds).
func (s *Server) Coordinator(channel string) *rolefsm.Coordinator {
	var c *rolefsm.Coordinator
	_ = s.driver.Do(func(n *replica.Node, _ time.Time) error {
		c = n.Coordinator(channel)
		return nil
	})
	return c
}
