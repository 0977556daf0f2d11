package rolefsm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gate is an audit output that blocks every write until opened: a pipe
// nobody reads.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

// TestAsyncHandlerNeverBlocksTheCommit: with the audit output blocked,
// transitions commit at once; the records the queue cannot hold are
// dropped and counted; once the output drains, every record not dropped
// is written, in order.
func TestAsyncHandlerNeverBlocksTheCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &gate{open: make(chan struct{})}
		h := NewAsyncHandler(slog.NewJSONHandler(out, nil), 2)
		c, err := NewCoordinator(WithName("orders"), WithLogger(slog.New(h)))
		require.NoError(t, err)
		ctx := context.Background()
		_, err = c.Fire(ctx, CapabilitySelected) // taken by the writer, which blocks in Write
		require.NoError(t, err)
		synctest.Wait()
		for range 4 { // two fill the queue, two are dropped
			_, err = c.Fire(ctx, MissedHeartbeats)
			require.NoError(t, err)
			_, err = c.Fire(ctx, ElectionLost)
			require.NoError(t, err)
		}
		assert.Equal(t, uint64(9), c.Stats().Generation, "every transition committed while the output was blocked")
		assert.Equal(t, uint64(6), h.Dropped())
		close(out.open)
		h.Close()
		lines := strings.Split(strings.TrimSpace(out.buf.String()), "\n")
		require.Len(t, lines, 3, "9 records, 6 dropped")
		for i, gen := range []string{`"generation":1`, `"generation":2`, `"generation":3`} {
			assert.Contains(t, lines[i], gen)
		}
		_, err = c.Fire(ctx, MissedHeartbeats)
		require.NoError(t, err)
		assert.Equal(t, uint64(7), h.Dropped(), "after Close, dropped and counted")
		h.Close() // again: nothing
	})
}

// TestAsyncHandlerPassesAttrsAndLevels: WithAttrs and WithGroup reach
// the next handler, and its level decides.
func TestAsyncHandlerPassesAttrsAndLevels(t *testing.T) {
	var buf bytes.Buffer
	h := NewAsyncHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}), 8)
	l := slog.New(h).With("node", 1).WithGroup("g")
	assert.False(t, l.Enabled(context.Background(), slog.LevelInfo))
	l.Info("not written")
	l.Warn("written", "k", "v")
	h.Close()
	assert.Equal(t, "level=WARN msg=written node=1 g.k=v\n", strings.SplitN(buf.String(), " ", 2)[1])
	assert.Zero(t, h.Dropped())
}

// steps is an audit output that writes one record each time it is
// stepped.
type steps struct {
	step chan struct{}
	n    int
}

func (s *steps) Write(p []byte) (int, error) {
	<-s.step
	s.n++
	return len(p), nil
}

// held returns how many records wait in h's queue, and the length of
// the array it holds for them.
func held(h *AsyncHandler) (waiting, array int) {
	q := h.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs) - q.head, cap(q.recs)
}

// TestAsyncHandlerLetsABacklogGo: the queue grows with a backlog, and
// once the output has drained it holds no array larger than asyncKeep:
// a node at rest keeps no queue's worth of memory.
func TestAsyncHandlerLetsABacklogGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &gate{open: make(chan struct{})}
		h := NewAsyncHandler(slog.NewJSONHandler(out, nil), 8192)
		l := slog.New(h)
		for i := range 1000 {
			l.Info("record", "i", i)
		}
		synctest.Wait()
		waiting, array := held(h)
		assert.Equal(t, 999, waiting, "one is with the blocked writer")
		assert.GreaterOrEqual(t, array, 999)
		close(out.open)
		synctest.Wait()
		waiting, array = held(h)
		assert.Zero(t, waiting)
		assert.LessOrEqual(t, array, asyncKeep)
		h.Close()
		assert.Equal(t, 1000, strings.Count(out.buf.String(), "\n"))
		assert.Zero(t, h.Dropped())
	})
}

// TestAsyncHandlerQueueStaysBounded: a writer that keeps up but never
// quite drains the queue does not make its array grow.
func TestAsyncHandlerQueueStaysBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &steps{step: make(chan struct{})}
		h := NewAsyncHandler(slog.NewJSONHandler(out, nil), 4)
		l := slog.New(h)
		for i := range 3 { // one with the writer, two waiting
			l.Info("record", "i", i)
		}
		for i := range 1000 {
			l.Info("record", "i", 3+i)
			out.step <- struct{}{}
			synctest.Wait()
		}
		waiting, array := held(h)
		assert.Equal(t, 2, waiting)
		assert.LessOrEqual(t, array, 8)
		for range 3 {
			out.step <- struct{}{}
		}
		h.Close()
		assert.Equal(t, 1003, out.n)
		assert.Zero(t, h.Dropped())
	})
}
