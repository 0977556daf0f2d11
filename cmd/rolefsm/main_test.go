package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func runCLI(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestMatrixTable(t *testing.T) {
	code, out, errOut := runCLI("", "matrix")
	assert.Equal(t, 0, code)
	assert.Empty(t, errOut)
	assert.Equal(t, `FROM       TO         SIGNAL
Idle       Replica    CapabilitySelected
Replica    Candidate  MissedHeartbeats
Candidate  Leader     ElectionWon
Candidate  Replica    ElectionLost
Leader     Idle       GracefulRelinquish
Replica    Idle       DiskPressureWithdraw
Leader     Idle       LeaderDiskPressureWithdraw
Candidate  Idle       CandidateDiskPressureWithdraw
Idle       Idle       ChannelClose
Replica    Idle       ChannelClose
Candidate  Idle       ChannelClose
Leader     Idle       ChannelClose
Leader     Replica    PeerLeaderObserved
`, out)
}

func TestCheck(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"check", "Idle", "Replica", "CapabilitySelected"}, 0, "ok\n", ""},
		{[]string{"check", "leader", "idle", "channelclose"}, 0, "ok\n", ""},
		{[]string{"check", "Idle", "Idle", "ChannelClose"}, 0, "ok\n", ""},
		{[]string{"check", "Idle", "Leader", "ElectionWon"}, 1, "invalid replica state transition: Idle → Leader\n", ""},
		{[]string{"check", "Idle", "Replica", "ElectionWon"}, 1, "transition Idle → Replica not permitted under signal ElectionWon\n", ""},
		{[]string{"check", "Idle", "Follower", "ElectionWon"}, 2, "", `rolefsm check: unknown role "Follower" (valid: Idle, Replica, Candidate, Leader)` + "\n"},
		{[]string{"check", "Idle", "Replica", "Promote"}, 2, "", "valid: CapabilitySelected, MissedHeartbeats"},
		{[]string{"check", "Idle", "Replica"}, 2, "", "rolefsm check: want 3 arguments, FROM TO SIGNAL; got 2\n"},
		{[]string{"check", "Idle", "Replica"}, 2, "", "roles: Idle, Replica, Candidate, Leader\nsignals: CapabilitySelected,"},
	}
	for _, c := range cases {
		code, out, errOut := runCLI("", c.args...)
		assert.Equal(t, c.code, code, "%v", c.args)
		assert.Equal(t, c.out, out, "%v", c.args)
		if c.err == "" {
			assert.Empty(t, errOut, "%v", c.args)
		} else {
			assert.Contains(t, errOut, c.err, "%v", c.args)
		}
	}
}

func TestUsage(t *testing.T) {
	code, _, errOut := runCLI("")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "usage: rolefsm")
	code, _, errOut = runCLI("", "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)
	for _, sub := range []string{"matrix", "check"} {
		code, out, errOut := runCLI("", sub, "-h")
		assert.Equal(t, 0, code, sub)
		assert.Empty(t, out, sub)
		assert.Contains(t, errOut, "usage: rolefsm "+sub, sub)
	}
	code, _, errOut = runCLI("", "matrix", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `rolefsm matrix: unexpected argument "extra"`, "a usage error says what was wrong")
	code, _, errOut = runCLI("", "replay", "a", "b")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "rolefsm replay: want one FILE (or - for stdin), got 2 arguments")
	code, _, errOut = runCLI("", "sim", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `rolefsm sim: unexpected argument "extra"`)
	code, _, _ = runCLI("", "matrix", "-bogus")
	assert.Equal(t, 2, code)
}
