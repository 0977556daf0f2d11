package server

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// Status is the node's view of itself and of its peers.
type Status struct {
	ID replica.NodeID
	// Insecure says the node runs without keys; PublicKey is its key
	// otherwise.
	Insecure  bool
	PublicKey udp.PublicKey
	// Channels are the channels, in the order of Config.Channels.
	Channels []replica.Status
	// Peers are the other nodes, by id: what the node and the
	// transport know of each.
	Peers []PeerStatus
}

// PeerStatus is one peer as the node sees it: heard or never heard,
// and if not, what the transport saw from its address.
type PeerStatus struct {
	replica.PeerStatus
	// Transport is what the transport knows of it: its address, the
	// session, unanswered handshakes, and the datagrams from its address
	// dropped by reason.
	Transport udp.PeerStats
}

// Status reads every channel's state, under the driver's lock, and the
// peers'.
func (s *Server) Status() Status {
	st := Status{ID: s.cfg.ID, Insecure: s.cfg.Insecure, PublicKey: s.tr.PublicKey(),
		Channels: make([]replica.Status, 0, len(s.cfg.Channels))}
	var nodePeers []replica.PeerStatus
	_ = s.driver.Do(func(n *replica.Node, _ time.Time) error {
		for _, name := range s.cfg.Channels {
			if cs, err := n.Status(name); err == nil {
				st.Channels = append(st.Channels, cs)
			}
		}
		nodePeers = n.Peers()
		return nil
	})
	heard := make(map[replica.NodeID]replica.PeerStatus, len(nodePeers))
	for _, p := range nodePeers {
		heard[p.ID] = p
	}
	for _, tp := range s.tr.Peers() {
		np, ok := heard[tp.ID]
		if !ok {
			np = replica.PeerStatus{ID: tp.ID}
		}
		st.Peers = append(st.Peers, PeerStatus{PeerStatus: np, Transport: tp})
	}
	return st
}

// ErrNotReady is matched by what Ready returns while the node is not
// ready.
var ErrNotReady = errors.New("server: not ready")

// Ready reports whether the node is ready to serve, for a readiness
// probe: nil once it hears its replica set (some peer healthy, as
// replica.PeerStatus says: heard within the heartbeat timeout, or it
// has none), every channel has a leader (it
// leads it or follows one; a parked channel excepted), and an election
// backend that reports readiness (rolefsmetcd's Elector: a session it
// may act on) says so. Otherwise an error matching ErrNotReady says
// what is missing.
func (s *Server) Ready() error {
	st := s.Status()
	var missing []string
	if len(st.Peers) > 0 {
		healthy := 0
		for _, p := range st.Peers {
			if p.Healthy {
				healthy++
			}
		}
		if healthy == 0 {
			missing = append(missing, fmt.Sprintf("no peer healthy: none heard lately (of %d)", len(st.Peers)))
		}
	}
	var leaderless []string
	for _, c := range st.Channels {
		if c.Leader == 0 && !c.Parked && c.Role != rolefsm.Leader {
			leaderless = append(leaderless, c.Channel)
		}
	}
	if len(leaderless) > 0 {
		if len(leaderless) > 3 {
			leaderless = append(leaderless[:3], fmt.Sprintf("and %d more", len(leaderless)-3))
		}
		missing = append(missing, "no leader on "+strings.Join(leaderless, ", "))
	}
	if r, ok := s.election.(interface{ Ready() error }); ok {
		if err := r.Ready(); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrNotReady, strings.Join(missing, "; "))
	}
	return nil
}
