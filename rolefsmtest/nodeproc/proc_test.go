package nodeproc

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test process's own CPU and resident set, as the benchmarks read
// a node's: CPU only grows, RSS is there, and a process that does not
// exist is an error, not a zero.
func TestProcReadings(t *testing.T) {
	pid := os.Getpid()
	a, err := CPUTime(pid)
	require.NoError(t, err)
	x := 0
	for i := range 50_000_000 { // a few tens of ms of CPU
		x ^= i * i
	}
	_ = x
	b, err := CPUTime(pid)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, b, a)
	rss, err := RSS(pid)
	require.NoError(t, err)
	assert.Greater(t, rss, int64(1<<20), "a Go test process holds more than 1 MiB")
	_, err = CPUTime(1 << 30)
	assert.Error(t, err)
	_, err = RSS(1 << 30)
	assert.Error(t, err)
}
