package main

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/replica/udp"
)

func TestKeygen(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run([]string{"keygen"}, nil, &out, &errb))
	line := strings.TrimSuffix(out.String(), "\n")
	key, err := base64.StdEncoding.DecodeString(line)
	require.NoError(t, err)
	assert.Len(t, key, 32)
	_, err = udp.ParseKeys(out.Bytes())
	require.NoError(t, err, "a key file line")

	var again bytes.Buffer
	require.Equal(t, exitOK, run([]string{"keygen"}, nil, &again, &errb))
	assert.NotEqual(t, out.String(), again.String(), "a new key each time")

	errb.Reset()
	assert.Equal(t, exitUsage, run([]string{"keygen", "extra"}, nil, &out, &errb))
	assert.Equal(t, "rolefsm keygen: unexpected argument \"extra\"\n", errb.String())
}
