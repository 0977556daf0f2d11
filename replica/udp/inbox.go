package udp

import (
	"sync"

	"github.com/rolefsm/rolefsm/replica"
)

// inbox holds a bounded queue of received batches per peer and serves
// them to its channel in turn, one batch of each peer with any waiting
// per round: a peer that floods fills its own queue, and every other
// peer's batches still wait behind at most one of its.
type inbox struct {
	out   chan replica.Inbound
	ready chan struct{}

	mu     sync.Mutex
	size   int
	queues map[replica.NodeID]*ring
	order  []*ring // in turn
	next   int
	free   [][]replica.Entry // entry slices to reuse
}

type ring struct {
	items      []replica.Inbound
	head, size int
}

const maxFree = 64

func (in *inbox) init(size int) {
	in.out = make(chan replica.Inbound)
	in.ready = make(chan struct{}, 1)
	in.size = size
	in.queues = make(map[replica.NodeID]*ring)
}

// push queues b from peer id, reporting false (and keeping nothing) if
// the peer's queue is full.
func (in *inbox) push(id replica.NodeID, b replica.Inbound) bool {
	in.mu.Lock()
	q := in.queues[id]
	if q == nil {
		q = &ring{items: make([]replica.Inbound, in.size)}
		in.queues[id] = q
		in.order = append(in.order, q)
	}
	if q.size == len(q.items) {
		in.recycleLocked(b.Batch.Entries)
		in.mu.Unlock()
		return false
	}
	q.items[(q.head+q.size)%len(q.items)] = b
	q.size++
	in.mu.Unlock()
	select {
	case in.ready <- struct{}{}:
	default:
	}
	return true
}

// pop takes the next batch in turn.
func (in *inbox) pop() (replica.Inbound, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for range in.order {
		q := in.order[in.next%len(in.order)]
		in.next++
		if q.size > 0 {
			b := q.items[q.head]
			q.items[q.head] = replica.Inbound{}
			q.head = (q.head + 1) % len(q.items)
			q.size--
			return b, true
		}
	}
	return replica.Inbound{}, false
}

// slab returns an entry slice to decode into.
func (in *inbox) slab() []replica.Entry {
	in.mu.Lock()
	defer in.mu.Unlock()
	if n := len(in.free); n > 0 {
		es := in.free[n-1]
		in.free = in.free[:n-1]
		return es
	}
	return nil
}

func (in *inbox) recycle(es []replica.Entry) {
	in.mu.Lock()
	in.recycleLocked(es)
	in.mu.Unlock()
}

func (in *inbox) recycleLocked(es []replica.Entry) {
	if cap(es) > 0 && len(in.free) < maxFree {
		clear(es[:cap(es)])
		in.free = append(in.free, es[:0])
	}
}

// serve hands the queued batches to the inbox's channel until quit,
// then closes it. A batch's entries are reused once the next batch has
// been taken: by then its receiver is done with it.
func (t *Transport) serve() {
	defer t.done.Done()
	in := &t.in
	defer close(in.out)
	var given []replica.Entry
	for {
		b, ok := in.pop()
		if !ok {
			select {
			case <-in.ready:
				continue
			case <-t.quit:
				return
			}
		}
		select {
		case in.out <- b:
			in.recycle(given)
			given = b.Batch.Entries
		case <-t.quit:
			return
		}
	}
}
