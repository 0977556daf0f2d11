package rolefsmetcd

import (
	"sync"
	"time"
)

// validity is what a node knows of its lease's life at the server: the
// lease cannot expire there before TTL after the latest keep-alive
// that succeeded was sent. It keeps the send times on the node's
// monotonic clock (time.Now's reading) and says until when the node may
// act on the lease: TTL − margin after that send.
type validity struct {
	mu     sync.Mutex
	ttl    time.Duration
	margin time.Duration
	sent   time.Time // the latest send of a keep-alive (or grant) that succeeded
	ok     bool      // sent is set: the lease has been granted
}

// renewed records a keep-alive or grant sent at sent that succeeded,
// with the TTL the server gave. A reply older than the one recorded, or
// with a shorter TTL than configured, moves nothing later than it must.
func (v *validity) renewed(sent time.Time, ttl time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ttl < v.ttl {
		// The server granted less than asked for (it rounds up
		// below its minimum, never down, but trust it): act on
		// what it said.
		sent = sent.Add(ttl - v.ttl)
	}
	if !v.ok || sent.After(v.sent) {
		v.sent, v.ok = sent, true
	}
}

// lost forgets the lease: it expired at the server, or was revoked.
func (v *validity) lost() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ok = false
}

// until returns the instant up to which the node may act on the lease,
// and false if it holds none.
func (v *validity) until() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ok {
		return time.Time{}, false
	}
	return v.sent.Add(v.ttl - v.margin), true
}

// valid reports whether the node may act on the lease at now.
func (v *validity) valid(now time.Time) bool {
	u, ok := v.until()
	return ok && now.Before(u)
}
