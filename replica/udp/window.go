package udp

// window is a session's replay window, after RFC 6479 as wireguard-go
// has it: a ring of 64-bit blocks, the highest counter accepted, and a
// bit for each of the windowSize counters below it. A counter is
// accepted once, and never when it is windowSize or more behind the
// highest.
type window struct {
	top    uint64 // the highest counter accepted, plus one (0: none yet)
	blocks [windowBlocks]uint64
}

// check reports whether counter n would be accepted, without recording
// it (a datagram is authenticated before its counter is recorded).
func (w *window) check(n uint64) bool {
	switch {
	case n >= RejectAfterMessages:
		return false
	case n >= w.top:
		return true
	case n+windowSize <= w.top-1:
		return false
	}
	return w.blocks[(n/64)%windowBlocks]&(1<<(n%64)) == 0
}

// accept records counter n, reporting false if it was not new.
func (w *window) accept(n uint64) bool {
	if !w.check(n) {
		return false
	}
	if n >= w.top {
		// Clear the blocks the new top moves into (all of them when it
		// jumps past the whole ring).
		if from := (w.top - 1) / 64; w.top == 0 || n/64-from >= windowBlocks {
			w.blocks = [windowBlocks]uint64{}
		} else {
			for i := from + 1; i <= n/64; i++ {
				w.blocks[i%windowBlocks] = 0
			}
		}
		w.top = n + 1
	}
	w.blocks[(n/64)%windowBlocks] |= 1 << (n % 64)
	return true
}
