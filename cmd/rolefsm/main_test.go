package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		{[]string{"check", "Idle", "Replica"}, 2, "", "rolefsm check: want 3 arguments, FROM TO SIGNAL; got 2\nrun \"rolefsm check -h\" for its usage\n"},
		{[]string{"check", "-h"}, 0, "", "roles: Idle, Replica, Candidate, Leader\nsignals: CapabilitySelected,"},
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
	assert.Equal(t, "rolefsm: unknown command \"frobnicate\"\nrun \"rolefsm help\" for the commands\n", errOut)
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

// TestUsageErrorsAreTwoLines: every command's usage error exits 2 with
// nothing on stdout and two lines on stderr: what is wrong, with the
// command's prefix and the flag or argument it is about, then where the
// help is. (The node's many cases are TestNodeRefusesBadCommandLines'.)
func TestUsageErrorsAreTwoLines(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.jsonl")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"sim", "-seed", "-1"}, `-seed "-1": want a whole number, 0 or more`},
		{[]string{"sim", "-heartbeat", "500"}, `-heartbeat "500": want a duration such as 500ms or 2s`},
		{[]string{"sim", "-q=perhaps"}, `-q "perhaps": want true or false`},
		{[]string{"sim", "extra"}, `unexpected argument "extra"`},
		{[]string{"sim", "-nodes", "0"}, "-nodes 0: want 1 to 64"},
		{[]string{"matrix", "-format", "svg"}, `-format "svg": want one of dot, json, markdown, mermaid, table`},
		{[]string{"matrix", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"check", "Idle"}, "want 3 arguments, FROM TO SIGNAL; got 1"},
		{[]string{"check", "Idle", "Follower", "ElectionWon"}, `unknown role "Follower" (valid: Idle, Replica, Candidate, Leader)`},
		{[]string{"replay"}, "want one FILE (or - for stdin), got 0 arguments"},
		{[]string{"replay", "-from", "Boss", "-"}, `-from: unknown role "Boss" (valid: Idle, Replica, Candidate, Leader)`},
		{[]string{"replay", missing}, "open " + missing + ": no such file or directory"},
		{[]string{"keygen"}, "-out: give the file to write the private key to (it is never printed)"},
		{[]string{"pubkey", "x"}, `unexpected argument "x"`},
		{[]string{"version", "x"}, `unexpected argument "x"`},
	} {
		code, out, errOut := runCLI("", tc.args...)
		assert.Equal(t, exitUsage, code, "%v", tc.args)
		assert.Empty(t, out, "%v", tc.args)
		assert.Equal(t, fmt.Sprintf("rolefsm %s: %s\nrun \"rolefsm %s -h\" for its usage\n", tc.args[0], tc.msg, tc.args[0]), errOut, "%v", tc.args)
	}
}

// TestVersion: the binary names its module and the Go release; a test
// binary is a build in a checkout.
func TestVersion(t *testing.T) {
	code, out, errOut := runCLI("", "version")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^rolefsm \S+.* go1\.\d+`, out)
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/rolefsm/rolefsm/cmd/rolefsm", Version: "v0.2.0"},
		Deps: []*debug.Module{
			{Path: "github.com/rolefsm/rolefsm", Version: "v0.2.0"},
			{Path: "github.com/rolefsm/rolefsm/rolefsmprom", Version: "v0.2.0"},
			{Path: "github.com/rolefsm/rolefsm/rolefsmetcd", Version: "v0.0.0", Replace: &debug.Module{Path: "../../rolefsmetcd"}},
			{Path: "go.etcd.io/etcd/client/v3", Version: "v3.6.5"},
		}}
	assert.Equal(t, "rolefsm v0.2.0 go1.26.0\n"+
		"github.com/rolefsm/rolefsm v0.2.0\n"+
		"github.com/rolefsm/rolefsm/rolefsmprom v0.2.0\n"+
		"github.com/rolefsm/rolefsm/rolefsmetcd (devel) => ../../rolefsmetcd\n", describeBuild(bi))
	bi = &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/rolefsm/rolefsm/cmd/rolefsm", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0ad7427fb1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6"}, {Key: "vcs.modified", Value: "true"}}}
	assert.Equal(t, "rolefsm (devel) (commit 0ad7427fb1c2, modified) go1.26.0\n", describeBuild(bi))
}
