package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm"
)

// readmePicture is the picture the README shows: rolefsm sim -format svg
// (seed 1, the README's main command), as the command prints it.
const readmePicture = "../../docs/sim-seed1.svg"

// TestSimSVGIsTheREADMEPicture: the README's picture is exactly what
// rolefsm sim -format svg prints today (-update rewrites it), with the
// run's summary on stderr, and it draws every node's lane, the faults and
// the transitions.
func TestSimSVGIsTheREADMEPicture(t *testing.T) {
	code, out, errOut := runCLI("", "sim", "-format", "svg")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "invariants:        ok (")
	if *update {
		require.NoError(t, os.WriteFile(readmePicture, []byte(out), 0o644))
	}
	want, err := os.ReadFile(readmePicture)
	require.NoError(t, err)
	assert.Equal(t, string(want), out, "the README's picture differs from rolefsm sim -format svg (go test ./cmd/rolefsm -update)")

	assert.True(t, strings.HasPrefix(out, `<svg xmlns="http://www.w3.org/2000/svg"`))
	for _, lane := range []string{">n1<", ">n5<"} {
		assert.Contains(t, out, lane)
	}
	_, text, _ := runCLI("", "sim")
	for _, want := range []string{"<title>3.45s lossy n1 → n3 68% lost</title>", "<title>n1 crashed, 1.55s to 2.20s</title>",
		"<title>3.75s n1 Candidate → Leader (ElectionWon)</title>"} {
		assert.Contains(t, out, want)
	}
	assert.Contains(t, text, "3.45s  --  lossy n1 → n3 68% lost", "the picture's faults are the timeline's")
	steps := 0
	for _, line := range strings.Split(text, "\n") {
		if traceStep.MatchString(line) {
			steps++
		}
	}
	assert.Positive(t, steps)
	assert.Equal(t, steps, strings.Count(out, "</title></line>"), "a tick per transition of the timeline")

	for _, args := range [][]string{{"-format", "svg", "-q"}, {"-format", "svg", "-sweep", "3"}, {"-format", "png"}} {
		code, _, errOut := runCLI("", append([]string{"sim"}, args...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
	}
}

// TestSimSVGInABrowser renders the README's picture in headless
// Chromium and reads the pixels back: the lanes show the roles'
// colours. Without chromium on the PATH it is skipped, unless
// ROLEFSM_REQUIRE_CHROMIUM is set (CI sets it).
func TestSimSVGInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("ROLEFSM_REQUIRE_CHROMIUM") != "" {
			t.Fatal("chromium is not on the PATH (apt-get install chromium)")
		}
		t.Skip("no chromium")
	}
	abs, err := filepath.Abs(readmePicture)
	require.NoError(t, err)
	shot := filepath.Join(t.TempDir(), "sim.png")
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--screenshot="+shot, "--window-size=960,276", "file://"+abs)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // its profile, not the user's
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 960, 276), img.Bounds())
	counts := map[rolefsm.Role]int{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			for r, hex := range roleColours {
				if near(img.At(x, y), hex) {
					counts[r]++
				}
			}
		}
	}
	t.Logf("pixels by role colour: %v", counts)
	// n1 leads from 3.75 s to the end: most of a lane; every node is a
	// Replica for most of the run.
	assert.Greater(t, counts[rolefsm.Leader], 15000, "the leader's green")
	assert.Greater(t, counts[rolefsm.Replica], 60000, "the replicas' blue")
	assert.Greater(t, counts[rolefsm.Idle], 3000, "the idle grey")
	assert.Greater(t, counts[rolefsm.Candidate], 100, "the candidates' orange")
}

// near reports whether c is the colour #rrggbb, give or take the
// browser's anti-aliasing.
func near(c color.Color, hex string) bool {
	var want [3]uint8
	for i := range want {
		v := hexDigit(hex[1+2*i])<<4 | hexDigit(hex[2+2*i])
		want[i] = v
	}
	r, g, b, _ := c.RGBA()
	d := func(a uint32, w uint8) int { return int(a>>8) - int(w) }
	return abs(d(r, want[0])) < 6 && abs(d(g, want[1])) < 6 && abs(d(b, want[2])) < 6
}

func hexDigit(c byte) uint8 {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
