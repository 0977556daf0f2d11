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
	ch      chan asyncRecord
	dropped atomic.Uint64
	done    sync.WaitGroup
	mu      sync.RWMutex // guards closed against a send on a closed ch
	closed  bool
}

type asyncRecord struct {
	h slog.Handler
	r slog.Record
}

// NewAsyncHandler returns an AsyncHandler writing to next through a
// queue of capacity records (at least 1).
func NewAsyncHandler(next slog.Handler, capacity int) *AsyncHandler {
	q := &asyncQueue{ch: make(chan asyncRecord, max(capacity, 1))}
	q.done.Add(1)
	go func() {
		defer q.done.Done()
		for a := range q.ch {
			_ = a.h.Handle(context.Background(), a.r) // a handler's error has nowhere to go
		}
	}()
	return &AsyncHandler{next: next, queue: q}
}

// Enabled reports whether the next handler takes records of level.
func (h *AsyncHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle queues r for the next handler, or drops and counts it if the
// queue is full or closed. It never blocks and returns nil.
func (h *AsyncHandler) Handle(_ context.Context, r slog.Record) error {
	q := h.queue
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.dropped.Add(1)
		return nil
	}
	select {
	case q.ch <- asyncRecord{h.next, r.Clone()}:
	default:
		q.dropped.Add(1)
	}
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
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	q.done.Wait()
}
