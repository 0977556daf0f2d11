package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

var goldenFiles = map[string]string{
	"table":    "matrix.txt",
	"markdown": "matrix.md",
	"mermaid":  "matrix.mmd",
	"dot":      "matrix.dot",
	"json":     "matrix.json",
}

// checkGolden compares got with testdata/file, or rewrites the file
// under -update.
func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/rolefsm -update to create %s", path)
	assert.Equal(t, string(want), got, "output differs from %s (go test ./cmd/rolefsm -update to accept)", path)
}

// TestMatrixFormatsGolden checks each -format against its golden file
// in testdata/; run with -update to rewrite them after a deliberate
// change.
func TestMatrixFormatsGolden(t *testing.T) {
	require.Len(t, goldenFiles, len(formats), "every format has a golden file")
	for format, file := range goldenFiles {
		code, out, errOut := runCLI("", "matrix", "-format", format)
		require.Equal(t, 0, code, format)
		require.Empty(t, errOut, format)
		checkGolden(t, file, out)
	}
	// The default format is the table.
	_, def, _ := runCLI("", "matrix")
	_, table, _ := runCLI("", "matrix", "-format", "table")
	assert.Equal(t, table, def)
	// Names without regard to case, as for roles and signals.
	code, mermaid, _ := runCLI("", "matrix", "-format", "Mermaid")
	require.Equal(t, 0, code)
	checkGolden(t, goldenFiles["mermaid"], mermaid)
}

func TestMatrixJSONIsWellFormed(t *testing.T) {
	_, out, _ := runCLI("", "matrix", "-format", "json")
	var m struct {
		Initial     string
		Roles       []string
		Signals     []string
		Transitions []struct{ From, To, Signal string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	assert.Equal(t, "Idle", m.Initial)
	assert.Len(t, m.Roles, 4)
	assert.Len(t, m.Signals, 10)
	assert.Len(t, m.Transitions, 13)
}

func TestMatrixUnknownFormat(t *testing.T) {
	code, out, errOut := runCLI("", "matrix", "-format", "svg")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, `-format "svg": want one of dot, json, markdown, mermaid, table`)
}

// TestREADMEDiagramIsCurrent fails when the Mermaid diagram in the
// README differs from what "rolefsm matrix -format mermaid" prints.
func TestREADMEDiagramIsCurrent(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```mermaid\n(.*?)```").FindAllSubmatch(readme, -1)
	require.Len(t, blocks, 1, "the README has one mermaid block")
	golden, err := os.ReadFile(filepath.Join("testdata", "matrix.mmd"))
	require.NoError(t, err)
	assert.Equal(t, string(golden), string(blocks[0][1]),
		"README.md's diagram is stale: paste the output of go run ./cmd/rolefsm matrix -format mermaid")
	// And the README's markdown table is the markdown format's output.
	md, err := os.ReadFile(filepath.Join("testdata", "matrix.md"))
	require.NoError(t, err)
	assert.True(t, bytes.Contains(readme, md), "README.md's matrix table is stale: paste go run ./cmd/rolefsm matrix -format markdown")
}
