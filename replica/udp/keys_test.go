package udp

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeys(t *testing.T) {
	k, err := GenerateKey()
	require.NoError(t, err)
	pub := k.Public()
	back, err := ParsePublicKey(pub.String())
	require.NoError(t, err)
	assert.Equal(t, pub, back)
	priv, err := ParsePrivateKey([]byte("# comment\n\n" + k.String() + "\n"))
	require.NoError(t, err)
	assert.Equal(t, k, priv)

	for _, tc := range []struct{ in, msg string }{
		{"not base64!", "is not base64"},
		{"AAAA", "public key of 3 bytes, want 32"},
		{PublicKey{}.String(), "public key of low order"},
	} {
		_, err := ParsePublicKey(tc.in)
		require.ErrorIs(t, err, ErrBadKey, tc.in)
		assert.Contains(t, err.Error(), tc.msg)
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "the key file holds no key"},
		{"# only a comment\n", "the key file holds no key"},
		{"!!!\n", "line 1: not base64"},
		{"\nAAAA\n", "line 2: 3 bytes, want 32"},
		{k.String() + "\n" + k.String() + "\n", "line 2: a key file holds one key"},
	} {
		_, err := ParsePrivateKey([]byte(tc.in))
		require.ErrorIs(t, err, ErrBadKey, tc.in)
		assert.Contains(t, err.Error(), tc.msg)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	require.NoError(t, WritePrivateKey(path, k))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	loaded, err := LoadPrivateKey(path)
	require.NoError(t, err)
	assert.Equal(t, k, loaded)
	require.ErrorIs(t, WritePrivateKey(path, k), os.ErrExist, "never overwritten")

	for _, mode := range []os.FileMode{0o640, 0o604, 0o666, 0o620} {
		require.NoError(t, os.Chmod(path, mode))
		_, err := LoadPrivateKey(path)
		require.ErrorIs(t, err, ErrKeyFileMode, "mode %04o", mode)
		assert.Contains(t, err.Error(), fmt.Sprintf("has mode %04o: chmod 600 %s", mode, path))
	}
	require.NoError(t, os.Chmod(path, 0o400))
	_, err = LoadPrivateKey(path)
	require.NoError(t, err, "read-only to its owner is fine")
}
