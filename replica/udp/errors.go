package udp

import (
	"errors"
	"fmt"

	"github.com/rolefsm/rolefsm/replica"
)

// The errors of the package, each matched with errors.Is.
var (
	// ErrBadConfig is matched by every configuration error of New.
	ErrBadConfig = errors.New("udp: bad configuration")
	// ErrUnknownPeer is returned by Send for a node that is not a peer.
	ErrUnknownPeer = errors.New("udp: peer unknown")
	// ErrChannelName is the reason of an entry Send left out (see
	// SendError): its channel name is empty or longer than
	// MaxChannelName.
	ErrChannelName = errors.New("udp: a channel name the wire cannot carry")
	// ErrBadKey is returned for a key that does not parse: not base64,
	// not 32 bytes, or a public key of low order.
	ErrBadKey = errors.New("udp: bad key")
	// ErrKeyFileMode is returned by LoadPrivateKey for a key file that
	// its group or others can read or write, as ssh refuses one.
	ErrKeyFileMode = errors.New("udp: key file readable by others")
	// errTruncated is a body or a payload that does not parse (counted
	// as Garbage).
	errTruncated = errors.New("udp: truncated or garbage datagram")
)

// SendError lists the entries of a batch that Send left out; the others
// were sent.
type SendError struct {
	To   replica.NodeID
	Left []replica.EntryError
}

func (e *SendError) Error() string {
	first := e.Left[0]
	if len(e.Left) == 1 {
		return fmt.Sprintf("udp: 1 entry to node %d left out: %v", e.To, first)
	}
	return fmt.Sprintf("udp: %d entries to node %d left out: %v, and %d more", len(e.Left), e.To, first, len(e.Left)-1)
}

// Unwrap returns ErrChannelName.
func (e *SendError) Unwrap() error { return ErrChannelName }
