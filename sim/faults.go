package sim

import (
	"strconv"
	"strings"

	"github.com/rolefsm/rolefsm/policy"
)

// injectFaults applies, in order, the random faults that end at this
// step, the scripted events of this step, and a new random fault.
func (r *run) injectFaults() {
	kept := r.endings[:0]
	for _, e := range r.endings {
		if e.step == r.step {
			r.apply(e.ev)
		} else {
			kept = append(kept, e)
		}
	}
	r.endings = kept
	for r.script < len(r.cfg.Script) && r.cfg.Script[r.script].Step == r.step {
		r.apply(r.cfg.Script[r.script])
		r.script++
	}
	if len(r.faults) > 0 && r.step < r.cfg.FaultsUntil && r.rng.Float64() < r.cfg.FaultRate {
		r.randomFault()
	}
}

// randomFault starts a fault of an enabled kind and schedules its end,
// no later than FaultsUntil.
func (r *run) randomFault() {
	kind := r.faults[r.rng.IntN(len(r.faults))]
	end := min(r.step+minFault+r.rng.IntN(spanFault), r.cfg.FaultsUntil)
	pick := func(ok func(n *node) bool) policy.NodeID {
		start := r.rng.IntN(r.n)
		for k := 0; k < r.n; k++ {
			if i := (start + k) % r.n; ok(&r.nodes[i]) {
				return policy.NodeID(i + 1)
			}
		}
		return 0
	}
	var start, stop Event
	switch kind {
	case Partition:
		if r.parted || r.n < 2 {
			return
		}
		// A random proper, non-empty side: a bit mask over the nodes.
		mask := 1 + r.rng.Uint64N(1<<r.n-2)
		side := make([]policy.NodeID, 0, r.n)
		for i := 0; i < r.n; i++ {
			if mask&(1<<i) != 0 {
				side = append(side, policy.NodeID(i+1))
			}
		}
		start, stop = Event{Kind: Cut, Side: side}, Event{Kind: Heal}
	case Kill:
		n := pick(func(n *node) bool { return n.alive })
		if n == 0 {
			return
		}
		start, stop = Event{Kind: Crash, Node: n}, Event{Kind: Revive, Node: n}
	case Disk:
		n := pick(func(n *node) bool { return !n.pressure })
		if n == 0 {
			return
		}
		start, stop = Event{Kind: Pressure, Node: n}, Event{Kind: Relieve, Node: n}
	case Close:
		n := pick(func(n *node) bool { return !n.closed })
		if n == 0 {
			return
		}
		start, stop = Event{Kind: CloseChannel, Node: n}, Event{Kind: Reopen, Node: n}
	case Loss:
		if r.n < 2 {
			return
		}
		from := r.rng.IntN(r.n)
		to := (from + 1 + r.rng.IntN(r.n-1)) % r.n
		if r.loss[from*r.n+to] > 0 {
			return
		}
		rate := 0.5 + r.rng.Float64()/2
		start = Event{Kind: Lossy, Node: policy.NodeID(from + 1), Peer: policy.NodeID(to + 1), Rate: rate}
		stop = Event{Kind: Lossy, Node: policy.NodeID(from + 1), Peer: policy.NodeID(to + 1)}
	}
	r.apply(start)
	stop.Step = end
	r.endings = append(r.endings, ending{step: end, ev: stop})
}

// apply carries out one fault event.
func (r *run) apply(e Event) {
	r.mix(uint64(r.step), uint64(e.Kind), uint64(e.Node), uint64(e.Peer))
	if r.trace != nil {
		r.printf("%7s  %s\n", fmtTime(r.res.TimeOf(r.step)), describe(e))
	}
	var n *node
	if e.Node > 0 {
		n = &r.nodes[e.Node-1]
	}
	switch e.Kind {
	case Cut:
		for i := range r.side {
			r.side[i] = false
		}
		for _, s := range e.Side {
			r.side[s-1] = true
			r.mix(uint64(s))
		}
		r.parted = true
	case Heal:
		r.parted = false
	case LinkDown, LinkUp:
		a, b := int(e.Node-1), int(e.Peer-1)
		if down := e.Kind == LinkDown; r.linkDown[a*r.n+b] != down {
			r.linkDown[a*r.n+b], r.linkDown[b*r.n+a] = down, down
			if down {
				r.linksDown++
			} else {
				r.linksDown--
			}
		}
	case Lossy:
		r.loss[int(e.Node-1)*r.n+int(e.Peer-1)] = e.Rate
	case Crash:
		n.alive, n.writing = false, false // the process and its in-flight write are gone
	case Revive:
		if n.alive {
			return
		}
		if err := r.boot(n); err != nil {
			r.violate(InvNoRejection, n.num, "reviving: %v", err)
		}
	case Pressure:
		n.pressure = true
		if !n.alive {
			return
		}
		if r.hooks.withdraw != nil {
			r.refused(n, "pressure", r.hooks.withdraw(r, n))
			return
		}
		r.refused(n, "pressure", n.rn.SetDiskPressure(r.ctx, r.now(), channelName, true))
	case Relieve:
		n.pressure = false
		if n.alive {
			r.refused(n, "relief", n.rn.SetDiskPressure(r.ctx, r.now(), channelName, false))
		}
	case CloseChannel:
		n.closed = true
		if n.alive {
			r.refused(n, "close", n.rn.Close(r.ctx, r.now(), channelName))
		}
	case Reopen:
		n.closed = false
		if n.alive {
			r.refused(n, "reopen", n.rn.Rejoin(r.ctx, r.now(), channelName))
		}
	}
}

// describe formats a fault event for the trace.
func describe(e Event) string {
	node := func(k policy.NodeID) string { return "n" + strconv.FormatUint(uint64(k), 10) }
	switch e.Kind {
	case Cut:
		var b strings.Builder
		b.WriteString("--  partition ")
		for i, s := range e.Side {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(node(s))
		}
		b.WriteString(" | the rest")
		return b.String()
	case Heal:
		return "--  partition healed"
	case LinkDown, LinkUp, Lossy:
		arrow := " ↔ "
		if e.Kind == Lossy {
			arrow = " → "
		}
		s := "--  " + e.Kind.String() + " " + node(e.Node) + arrow + node(e.Peer)
		if e.Kind == Lossy {
			s += " " + strconv.Itoa(int(e.Rate*100+0.5)) + "% lost"
		}
		return s
	}
	return "--  " + e.Kind.String() + " " + node(e.Node)
}
