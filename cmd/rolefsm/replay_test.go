package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rolefsm/rolefsm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplaySteps(t *testing.T) {
	in := `{"to":"Replica","signal":"CapabilitySelected"}

{"to":"Candidate","signal":"MissedHeartbeats","cold_start":true}
{"to":"Leader","signal":"ElectionWon"}
{"to":"Idle","signal":"ChannelClose"}
{"to":"Idle","signal":"ChannelClose"}
`
	code, out, errOut := runCLI(in, "replay", "-")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, `start: Idle
line 1: Idle → Replica (CapabilitySelected) ok, generation 1
line 3: Replica → Candidate (MissedHeartbeats) ok, generation 2
line 4: Candidate → Leader (ElectionWon) ok, generation 3
line 5: Leader → Idle (ChannelClose) ok, generation 4
line 6: Idle → Idle (ChannelClose) ok, generation 4
role: Idle
generation: 4
leader changes: 1
election thrash: 0
cold starts: 1
transitions:
  Candidate → Leader (ElectionWon): 1
  Idle → Replica (CapabilitySelected): 1
  Leader → Idle (ChannelClose): 1
  Replica → Candidate (MissedHeartbeats): 1
replayed 5 steps, skipped 0 lines
`, out)
	assert.Empty(t, errOut, "the verdict is on stdout")
}

func TestReplayRejectedStep(t *testing.T) {
	in := `{"to":"Replica","signal":"CapabilitySelected"}
{"to":"Leader","signal":"ElectionWon"}
{"to":"Candidate","signal":"MissedHeartbeats"}
`
	code, out, errOut := runCLI(in, "replay", "-")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "line 2: rejected: invalid replica state transition: Replica → Leader\n")
	assert.Contains(t, out, "generation: 1\n", "the final stats are printed")
	assert.NotContains(t, out, "line 3")
	assert.True(t, strings.HasSuffix(out, "\nreplayed 1 step, skipped 0 lines; stopped at line 2: rejected\n"), "the verdict is the last line:\n%s", out)
	assert.Contains(t, errOut, "rolefsm replay: line 2: invalid replica state transition: Replica → Leader")
}

// TestReplayVerdictIsTheLastLine: an audit log that is inconsistent
// (a line missing) ends with the same verdict line as a rejection; with
// -name, a log whose lines name no channel replays nothing.
func TestReplayVerdictIsTheLastLine(t *testing.T) {
	in := `{"name":"a","from":"Idle","to":"Replica","signal":"CapabilitySelected","seq":1}
{"name":"a","from":"Candidate","to":"Leader","signal":"ElectionWon","seq":3}
`
	code, out, errOut := runCLI(in, "replay", "-")
	assert.Equal(t, 1, code)
	assert.True(t, strings.HasSuffix(out, "\nreplayed 1 step, skipped 0 lines; stopped at line 2: inconsistent\n"), out)
	assert.Contains(t, out, "line 2: inconsistent: the log says from Candidate, the replay is in Replica\n")
	assert.Contains(t, errOut, "line 2: the log says from Candidate, the replay is in Replica: a line is missing or out of order")

	// A line it cannot read ends it too (exit 2), with the verdict last.
	code, out, _ = runCLI(`{"to":"Replica","signal":"CapabilitySelected"}`+"\nnot json\n", "replay", "-")
	assert.Equal(t, exitUsage, code)
	assert.True(t, strings.HasSuffix(out, "\nreplayed 1 step, skipped 0 lines; stopped at line 2: malformed\n"), out)

	steps := `{"to":"Replica","signal":"CapabilitySelected"}` + "\n"
	code, out, errOut = runCLI(steps, "replay", "-name", "nosuch", "-")
	assert.Equal(t, 1, code)
	assert.Equal(t, `nothing replayed: no step of channel "nosuch": the log's lines name no channel (-name reads the audit lines' "name")`+"\n", out)
	assert.Equal(t, "rolefsm replay: nothing replayed\n", errOut)
}

func TestReplayFrom(t *testing.T) {
	in := `{"to":"Leader","signal":"ElectionWon"}` + "\n"
	code, _, _ := runCLI(in, "replay", "-")
	assert.Equal(t, 1, code, "from Idle, ElectionWon is rejected")
	code, out, _ := runCLI(in, "replay", "-from", "candidate", "-")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "start: Candidate\n")
	assert.Contains(t, out, "role: Leader\n")
	code, _, errOut := runCLI(in, "replay", "-from", "Follower", "-")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "valid: Idle, Replica, Candidate, Leader")
}

// auditLog runs a real Coordinator with a JSON audit logger and returns
// what it wrote.
func auditLog(t *testing.T, name string, initial rolefsm.Role, steps []rolefsm.Signal) string {
	t.Helper()
	var buf bytes.Buffer
	c, err := rolefsm.NewCoordinator(rolefsm.WithName(name), rolefsm.WithInitialRole(initial),
		rolefsm.WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	require.NoError(t, err)
	for _, s := range steps {
		_, _ = c.Fire(context.Background(), s)
	}
	return buf.String()
}

func TestReplayAuditLog(t *testing.T) {
	log := auditLog(t, "orders", rolefsm.Replica, []rolefsm.Signal{
		rolefsm.MissedHeartbeats, rolefsm.ElectionWon,
		rolefsm.MissedHeartbeats, // rejected: recorded with an error
		rolefsm.PeerLeaderObserved, rolefsm.MissedHeartbeats, rolefsm.ElectionLost,
	})
	// Other records in the same log are passed over.
	log = `{"time":"2026-11-26T10:00:00Z","level":"INFO","msg":"service started"}` + "\n" + log
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(log), 0o600))

	code, out, errOut := runCLI("", "replay", file)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	assert.Contains(t, out, "start: Replica\n", "the start role comes from the first audit line")
	assert.Contains(t, out, "line 4: skipped recorded rejection: invalid replica state transition: Leader → Candidate\n")
	assert.Contains(t, out, "line 7: Candidate → Replica (ElectionLost) ok, generation 5\n")
	assert.Contains(t, out, "role: Replica\ngeneration: 5\nleader changes: 1\nelection thrash: 2\n")
	assert.Contains(t, out, "replayed 5 steps, skipped 2 lines")
}

func TestReplayAuditLogInconsistencies(t *testing.T) {
	log := auditLog(t, "orders", rolefsm.Idle, []rolefsm.Signal{
		rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon,
	})
	lines := strings.SplitAfter(log, "\n")
	require.Len(t, lines, 4) // three lines and an empty tail

	// A line lost from the middle: the next line's "from" gives it away.
	code, _, errOut := runCLI(lines[0]+lines[2], "replay", "-")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "line 2: the log says from Candidate, the replay is in Replica")

	// A generation that the replay does not reach.
	tampered := strings.Replace(lines[1], `"generation":2`, `"generation":7`, 1)
	code, _, errOut = runCLI(lines[0]+tampered, "replay", "-")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "line 2: the log says generation 7, the replay reached 2")
}

func TestReplayName(t *testing.T) {
	a := auditLog(t, "a", rolefsm.Idle, []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats})
	b := auditLog(t, "b", rolefsm.Idle, []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.DiskPressureWithdraw})
	al, bl := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	mixed := al[0] + bl[0] + al[1] + bl[1]
	code, _, errOut := runCLI(mixed, "replay", "-")
	assert.Equal(t, 2, code, "two channels interleaved do not make one chain")
	assert.Contains(t, errOut, `rolefsm replay: line 2: this line is channel "b", the lines before it channel "a": the log holds several channels; replay one at a time with -name CHANNEL`)
	code, out, _ := runCLI(mixed, "replay", "-name", "b", "-")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "role: Idle\ngeneration: 2\n")
	code, out, _ = runCLI(mixed, "replay", "-name", "a", "-")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "role: Candidate\ngeneration: 2\n")
}

func TestReplayMalformed(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"not JSON":       {"{\"to\":\"Replica\",\"signal\":\"CapabilitySelected\"}\nnot json\n", "line 2: not a JSON object"},
		"array":          {"[1,2]\n", "line 1: not a JSON object"},
		"truncated":      {`{"to":"Replica",`, "line 1: not valid JSON at byte 16: unexpected end of JSON input"},
		"null":           {"null\n", "line 1: not a JSON object"},
		"a string":       {`"str"`, "line 1: not a JSON object"},
		"missing signal": {`{"to":"Replica"}`, `line 1: a step needs both "to" and "signal"`},
		"bad role":       {`{"to":"Follower","signal":"CapabilitySelected"}`, `line 1: unknown role "Follower"`},
		"bad signal":     {`{"to":"Replica","signal":"Promote"}`, `line 1: unknown signal "Promote"`},
		"wrong type":     {`{"to":5,"signal":"Promote"}`, `line 1: "to" is a number, want a string`},
		"bool":           {`{"to":true,"signal":"Promote"}`, `line 1: "to" is true or false, want a string`},
		"bad from":       {`{"from":"X","to":"Replica","signal":"CapabilitySelected"}`, `line 1: unknown role "X"`},
		"non-UTF-8":      {"{\"to\":\"\xff\xfe\",\"signal\":\"ChannelClose\"}", "line 1: unknown role"},
		"negative seq":   {`{"to":"Replica","signal":"CapabilitySelected","seq":-1}`, `line 1: "seq" is -1, want a whole number, 0 or more`},
		"bad generation": {`{"to":"Replica","signal":"CapabilitySelected","generation":"one"}`, `line 1: "generation" is a string, want a whole number, 0 or more`},
		"huge role name": {`{"to":"` + strings.Repeat("R", 100000) + `","signal":"ChannelClose"}`, "(100000 bytes)"},
	}
	for name, c := range cases {
		code, _, errOut := runCLI(c.in, "replay", "-")
		assert.Equal(t, 2, code, name)
		assert.Contains(t, errOut, c.want, name)
		assert.NotContains(t, errOut, "main.", "%s: no Go type names", name)
		assert.Less(t, len(errOut), 1000, "%s: the error message is bounded", name)
	}
}

// TestReplayLongLinesAndBOM: a line of a few MiB is read; one past the
// bound is an error that says so; a UTF-8 byte order mark is skipped.
func TestReplayLongLinesAndBOM(t *testing.T) {
	step := func(pad int) string {
		return `{"to":"Replica","signal":"CapabilitySelected","pad":"` + strings.Repeat("x", pad) + `"}` + "\n"
	}
	code, out, errOut := runCLI(step(2<<20), "replay", "-")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "replayed 1 step, skipped 0 lines")

	defer func(old int) { maxLine = old }(maxLine)
	maxLine = 1 << 20
	code, _, errOut = runCLI(step(2<<20), "replay", "-")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "rolefsm replay: line 1: longer than 1 MiB")

	code, out, errOut = runCLI("\xef\xbb\xbf"+step(1), "replay", "-")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "line 1: Idle → Replica (CapabilitySelected) ok")
}

// TestReplayNothingIsNotOK: a replay that replays nothing exits 1 and
// says why: an empty input, no step at all, or no step of the channel
// asked for (the log's channels listed, a near miss in case pointed out).
func TestReplayNothingIsNotOK(t *testing.T) {
	log := auditLog(t, "orders", rolefsm.Idle, []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats}) +
		auditLog(t, "payments", rolefsm.Idle, []rolefsm.Signal{rolefsm.CapabilitySelected})
	for _, c := range []struct {
		in   string
		args []string
		want string
	}{
		{"", nil, "nothing replayed: the input is empty"},
		{"\n\n", nil, "nothing replayed: the input is empty"},
		{`{"msg":"hello"}` + "\n", nil, "nothing replayed: no step among 1 line"},
		{log, []string{"-name", "nosuch"}, `nothing replayed: no step of channel "nosuch"; the log holds "orders" (2 steps), "payments" (1 step)`},
		{log, []string{"-name", "ORDERS"}, `. Channel names are compared exactly: did you mean "orders"?`},
	} {
		code, out, errOut := runCLI(c.in, append(append([]string{"replay"}, c.args...), "-")...)
		assert.Equal(t, 1, code, "%q %v", c.in, c.args)
		assert.Contains(t, out, c.want, "%v", c.args)
		assert.Contains(t, errOut, "rolefsm replay: nothing replayed")
	}
	code, _, _ := runCLI("", "replay", os.DevNull)
	assert.Equal(t, 1, code, "/dev/null")
}

func TestReplayUsage(t *testing.T) {
	code, _, errOut := runCLI("", "replay")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "rolefsm replay: want one FILE")
	code, _, errOut = runCLI("", "replay", filepath.Join(t.TempDir(), "missing.jsonl"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "no such file")
	code, out, errOut := runCLI("", "replay", "-h")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "-from")
	// Empty input: nothing replayed, which is not a clean verdict.
	code, out, _ = runCLI("", "replay", "-from", "Leader", "-")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "start: Leader\nnothing replayed: the input is empty\n")
}

func TestReplayOnlyOtherLogLines(t *testing.T) {
	code, out, errOut := runCLI(`{"level":"INFO","msg":"service started"}`+"\n", "replay", "-")
	assert.Equal(t, 1, code)
	assert.Equal(t, "nothing replayed: no step among 1 line\n", out)
	assert.Equal(t, "rolefsm replay: nothing replayed\n", errOut)
}
