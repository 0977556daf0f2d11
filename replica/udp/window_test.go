package udp

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWindow(t *testing.T) {
	var w window
	steps := []struct {
		n  uint64
		ok bool
	}{
		{0, true}, {0, false}, {2, true}, {1, true}, {1, false}, {2, false},
		{windowSize + 1, true}, // 0 and 1 are now windowSize and more behind
		{1, false}, {2, false}, {3, true}, {3, false},
		{100_000, true}, {100_000 - windowSize + 1, true}, {100_000 - windowSize, false},
		{99_999, true}, {100_001, true},
		{RejectAfterMessages - 1, true}, {RejectAfterMessages, false}, {1<<64 - 1, false},
		{RejectAfterMessages - 2, true},
	}
	for i, s := range steps {
		assert.Equal(t, s.ok, w.accept(s.n), "step %d: counter %d", i, s.n)
	}
	// A jump past the whole ring forgets everything below it.
	var j window
	for n := uint64(0); n < 64*windowBlocks; n++ {
		require.True(t, j.accept(n))
	}
	const far = uint64(10 * 64 * windowBlocks)
	require.True(t, j.accept(far))
	for n := far - windowSize + 1; n < far; n++ {
		require.True(t, j.accept(n), "counter %d is new", n)
	}
}
