package udp

// The handshakes' timers, and the rate limits.

import (
	"time"
)

// timers runs the handshakes' retries and rekeys; it sleeps while none
// is due.
func (t *Transport) timers() {
	defer t.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-t.quit:
			return
		case <-t.kick:
		case <-timer.C:
		}
		t.mu.Lock()
		now := t.now()
		next := t.maintain(now)
		t.mu.Unlock()
		timer.Stop()
		timer.Reset(max(next.Sub(now), time.Millisecond))
	}
}

func (t *Transport) kickTimers() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// maintain starts the handshakes that are due, warns about peers that
// answer none, and returns when to look again. t.mu is held.
func (t *Transport) maintain(now time.Time) time.Time {
	next := now.Add(RekeyAfterTime)
	if t.cfg.Insecure {
		return next
	}
	for _, p := range t.order {
		if t.rekeyDue(now, p) {
			if p.hs == nil || !now.Before(p.nextTry) {
				t.initiate(now, p)
			}
			if !p.firstTry.IsZero() && p.current == nil && now.Sub(p.firstTry) >= SilentPeerAfter {
				t.warn(now, p, warnSilent, "the peer has answered no handshake: it is down, or its address is wrong, "+
					"or a firewall drops UDP, or it does not have this node's public key",
					"for", now.Sub(p.firstTry).Round(time.Second).String(), "public_key", t.PublicKey().String())
			}
			if p.nextTry.Before(next) {
				next = p.nextTry
			}
			continue
		}
		after := RekeyAfterTime
		if !p.current.initiator {
			after += RekeyTimeout
		}
		if p.current.initiator && !p.current.heard {
			after = RekeyTimeout
		}
		if due := p.current.created.Add(after); due.Before(next) {
			next = due
		}
	}
	return next
}

// bucket is a token bucket of rate tokens a second, as deep.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.rate
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.rate, b.tokens+d*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
