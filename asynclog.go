package rolefsm

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// AsyncHandler is a slog.Handler that hands each record to another
// handler on a goroutine of its own, through a bounded queue: the
// goroutine that logs never waits for the output. Give it to WithLogger
// (slog.New(h)) so that a slow or blocked audit output (a pipe nobody
// reads, a full disk) cannot stall the transitions, nor the replica
// node whose driver commits them: what finds the queue full is dropped
// and counted (Dropped), never lost silently. To keep every record,
// read them with Subscribe instead, or log with the plain handler,
// which blocks the commit until the output takes it.
//
// Close drains the queue and stops the goroutine.
type AsyncHandler struct {
	next  slog.Handler
	queue *asyncQueue
}

type asyncQueue struct {
	mu sync.Mutex
	// recs[head:] wait for the writer, oldest first; the array grows
	// with a backlog and is let go once the writer drains it, so that
	// a node at rest holds no queue's worth of memory (a channel of
	// 8,192 records kept 2 MB resident, scanned by every GC).
	recs     []asyncRecord
	head     int
	capacity int
	closed   bool
	ready    sync.Cond // a record waits, or closed
	dropped  atomic.Uint64
	done     sync.WaitGroup
}

// asyncKeep is the largest array the queue keeps once drained.
const asyncKeep = 64

type asyncRecord struct {
	h slog.Handler
	r slog.Record
}

// NewAsyncHandler returns an AsyncHandler writing to next through a
// queue of capacity records (at least 1).
func NewAsyncHandler(next slog.Handler, capacity int) *AsyncHandler {
	q := &asyncQueue{capacity: max(capacity, 1)}
	q.ready.L = &q.mu
	q.done.Add(1)
	go q.write()
	return &AsyncHandler{next: next, queue: q}
}

// write hands the records to their handlers, one at a time, until the
// queue is closed and empty.
func (q *asyncQueue) write() {
	defer q.done.Done()
	for {
		q.mu.Lock()
		for q.head == len(q.recs) && !q.closed {
			q.ready.Wait()
		}
		if q.head == len(q.recs) {
			q.mu.Unlock()
			return // closed, and every record written
		}
		a := q.recs[q.head]
		q.recs[q.head] = asyncRecord{}
		q.head++
		if q.head == len(q.recs) {
			q.head = 0
			q.recs = q.recs[:0]
			if cap(q.recs) > asyncKeep {
				q.recs = nil // a backlog's array: let it go
			}
		}
		q.mu.Unlock()
		_ = a.h.Handle(context.Background(), a.r) // a handler's error has nowhere to go
	}
}

// Enabled reports whether the next handler takes records of level.
func (h *AsyncHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle queues r for the next handler, or drops and counts it if the
// queue is full or closed. It never blocks and returns nil.
func (h *AsyncHandler) Handle(_ context.Context, r slog.Record) error {
	q := h.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.recs)-q.head >= q.capacity {
		q.dropped.Add(1)
		return nil
	}
	if q.head > 0 && len(q.recs) == cap(q.recs) {
		// Full behind the writer: move the waiting records down
		// rather than grow the array.
		k := copy(q.recs, q.recs[q.head:])
		clear(q.recs[k:])
		q.recs, q.head = q.recs[:k], 0
	}
	q.recs = append(q.recs, asyncRecord{h.next, r.Clone()})
	q.ready.Signal()
	return nil
}

// WithAttrs returns a handler with attrs that shares h's queue.
func (h *AsyncHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &AsyncHandler{next: h.next.WithAttrs(attrs), queue: h.queue}
}

// WithGroup returns a handler with the group that shares h's queue.
func (h *AsyncHandler) WithGroup(name string) slog.Handler {
	return &AsyncHandler{next: h.next.WithGroup(name), queue: h.queue}
}

// Dropped returns how many records were dropped: the queue was full,
// or the handler closed.
func (h *AsyncHandler) Dropped() uint64 { return h.queue.dropped.Load() }

// Close writes what is queued, waits for it, and stops the goroutine;
// records handled after Close are dropped and counted. It may be
// called more than once.
func (h *AsyncHandler) Close() {
	q := h.queue
	q.mu.Lock()
	q.closed = true
	q.ready.Signal()
	q.mu.Unlock()
	q.done.Wait()
}
