package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/replica/udp"
)

// TestKeygen: keygen writes a private key file of mode 0600, never over
// another, and prints the public key that pubkey prints again.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node1.key")
	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run([]string{"keygen", "-out", path}, nil, &out, &errb), errb.String())
	pub, err := udp.ParsePublicKey(strings.TrimSpace(out.String()))
	require.NoError(t, err, "stdout is the public key")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	key, err := udp.LoadPrivateKey(path)
	require.NoError(t, err)
	assert.Equal(t, pub, key.Public())
	assert.NotContains(t, out.String()+errb.String(), key.String(), "the private key is never printed")

	out.Reset()
	require.Equal(t, exitOK, run([]string{"pubkey", "-key-file", path}, nil, &out, &errb))
	assert.Equal(t, pub.String()+"\n", out.String())

	errb.Reset()
	assert.Equal(t, exitRejected, run([]string{"keygen", "-out", path}, nil, &out, &errb))
	assert.Equal(t, "rolefsm keygen: "+path+" exists: a key file is never overwritten\n", errb.String())
	again, err := udp.LoadPrivateKey(path)
	require.NoError(t, err)
	assert.Equal(t, key, again, "the file is unchanged")

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"keygen"}, exitUsage, "rolefsm keygen: -out: give the file to write the private key to (it is never printed)\n"},
		{[]string{"keygen", "-out", path, "extra"}, exitUsage, "rolefsm keygen: unexpected argument \"extra\"\n"},
		{[]string{"pubkey"}, exitUsage, "rolefsm pubkey: -key-file: give the private key file\n"},
		{[]string{"keygen", "-out", filepath.Join(dir, "no", "such", "dir")}, exitRejected, "no such file or directory"},
	} {
		errb.Reset()
		assert.Equal(t, tc.code, run(tc.args, nil, &out, &errb), tc.args)
		assert.Contains(t, errb.String(), tc.msg, tc.args)
	}

	require.NoError(t, os.Chmod(path, 0o644))
	errb.Reset()
	assert.Equal(t, exitRejected, run([]string{"pubkey", "-key-file", path}, nil, &out, &errb))
	assert.Contains(t, errb.String(), "has mode 0644: chmod 600 "+path)
}
