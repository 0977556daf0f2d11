package nodeproc

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/replica"
	"github.com/rolefsm/rolefsm/replica/udp"
)

// The harness without processes (cmd/rolefsm's tests run it with
// them): keys written as the command wants them, peers as its -peers
// reads them, and the busiest leader.
func TestClusterConfiguration(t *testing.T) {
	c, err := New("rolefsm", t.TempDir(), []replica.NodeID{1, 2, 3}, "-channels", "a")
	require.NoError(t, err)
	for id := replica.NodeID(1); id <= 3; id++ {
		st, err := os.Stat(c.KeyFiles[id])
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
		k, err := udp.LoadPrivateKey(c.KeyFiles[id])
		require.NoError(t, err)
		assert.Equal(t, c.Keys[id], k)
	}
	peers := strings.Split(c.PeersOf(2), ",")
	require.Len(t, peers, 2)
	assert.Equal(t, "1="+c.UDP[1]+"@"+c.Keys[1].Public().String(), peers[0])
	c.Peers[2] = "3=" + c.UDP[3]
	assert.Equal(t, "3="+c.UDP[3], c.PeersOf(2), "Peers says, when set")
	c.Insecure = true
	assert.Equal(t, "1=x:1", c.Peer(1, "x:1"))
	_, err = c.Get(1, "/status")
	require.ErrorIs(t, err, ErrNotRunning)
	assert.Equal(t, replica.NodeID(2), MostLeading(map[string]replica.NodeID{"a": 3, "b": 2, "c": 2}))
	assert.Equal(t, replica.NodeID(1), MostLeading(map[string]replica.NodeID{"a": 3, "b": 1}), "the lowest id of a tie")
}
