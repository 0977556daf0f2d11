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
