package udp

import "time"

// The protocol's bounds, after WireGuard's (wireguard-go
// device/constants.go): a session is rekeyed before either bound is
// reached, and refused after it.
const (
	// RekeyAfterTime is the age at which the initiator of a session
	// starts a handshake for a new one (the responder waits
	// RekeyAfterTime + RekeyTimeout, so the two rarely cross).
	RekeyAfterTime = 120 * time.Second
	// RejectAfterTime is the age after which a session is neither
	// used nor accepted.
	RejectAfterTime = 180 * time.Second
	// RekeyAfterMessages is the number of datagrams sent under a
	// session after which a handshake for a new one starts.
	RekeyAfterMessages = 1 << 60
	// RejectAfterMessages is the counter from which a session's
	// datagrams are neither sent nor accepted: the counter is the
	// AEAD nonce, and never repeats.
	RejectAfterMessages = 1<<64 - 1<<13 - 1
	// RekeyTimeout is the longest wait for a handshake's answer before
	// another try; the first retry comes after HandshakeRetry, and each
	// wait doubles (with up to a quarter of jitter) up to RekeyTimeout.
	RekeyTimeout   = 5 * time.Second
	HandshakeRetry = 200 * time.Millisecond
	// DuplicateGrace is, on an insecure transport (which has no
	// handshake to prove a process alive), how long the datagrams of a
	// peer's superseded boot may still arrive (reordered, or in flight
	// when it restarted) before the two boots are taken for two
	// processes with one id.
	DuplicateGrace = time.Second
	// NoticeInterval bounds how often a peer is told that one of its
	// sessions is superseded, and how often this transport answers
	// such a notice with a handshake.
	NoticeInterval = time.Second
	// WarnInterval bounds how often one warning about one peer is
	// logged; the ones in between are counted in the next.
	WarnInterval = 10 * time.Second
	// SilentPeerAfter is how long a configured peer may leave every
	// handshake unanswered before a warning says so.
	SilentPeerAfter = 10 * time.Second
)

// The handshake rate limits: a transport does Diffie-Hellman work for
// at most this many handshake messages a second (with a burst of as
// many): HandshakesPerSecond for each peer (initiations from its
// configured address, and the responses to ours), and
// OtherHandshakesPerSecond for all other sources together, so that a
// flood from elsewhere, or one with another peer's address, cannot
// starve a peer's handshakes. The MAC checked before either costs a
// keyed hash, not a Diffie-Hellman.
const (
	HandshakesPerSecond      = 100
	OtherHandshakesPerSecond = 20
)

const (
	// windowBlocks is the replay window's size in 64-bit blocks: it
	// accepts a datagram up to (windowBlocks-1)*64 counters behind the
	// highest seen (RFC 6479, as wireguard-go).
	windowBlocks = 32
	windowSize   = (windowBlocks - 1) * 64
	// maxSessions is the sessions kept per peer, newest first: the one
	// in use, the one before it (datagrams still in flight) and
	// responder sessions not yet confirmed.
	maxSessions = 4
	// replayCache is the number of recent initiations remembered, to
	// refuse a replayed one before any Diffie-Hellman work.
	replayCache = 4096
	// maxQueued bounds the datagrams of heartbeats that wait for a
	// peer's session (the newest heartbeat replaces the ones before).
	maxQueued = 64
)
