package main

// rolefsm sim -format svg: the run drawn as swim lanes, one per node,
// the role as colour over time, faults shaded, transitions marked.

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/sim"
)

// The drawing's geometry, in pixels.
const (
	svgWidth  = 960
	svgLeft   = 48 // room for the lane labels
	svgRight  = 16
	svgTop    = 56 // the title and the legend
	svgLane   = 30 // one node's lane
	svgGap    = 6  // between lanes
	svgBottom = 40 // the time axis
)

// roleColours are the lanes' colours: distinct for colour-blind readers
// too (blue, orange, green-yellow and grey differ in lightness).
var roleColours = map[rolefsm.Role]string{
	rolefsm.Idle:      "#bdbdbd",
	rolefsm.Replica:   "#4e79a7",
	rolefsm.Candidate: "#f28e2b",
	rolefsm.Leader:    "#59a14f",
}

var (
	traceStep  = regexp.MustCompile(`^\s*(\d+\.\d+)s  n(\d+)\s+(\w+)\s+→ (\w+)\s+(\w+)`)
	traceFault = regexp.MustCompile(`^\s*(\d+\.\d+)s  --  (.*)$`)
)

// span is a stretch of one lane: a role, or a fault shading it.
type span struct {
	from, to time.Duration
	role     rolefsm.Role
	label    string
}

// renderSVG draws a run from its trace (as sim.Run writes it) and its
// result.
func renderSVG(w io.Writer, trace string, res *sim.Result) error {
	c := res.Config
	end := res.TimeOf(c.Steps)
	n := c.Nodes
	roles := make([][]span, n) // per node, its roles over time
	down := make([][]span, n)  // per node, crashed stretches
	var parts []span           // partitions, across every lane
	var marks []struct {
		at   time.Duration
		node int
		t    rolefsm.Transition
	}
	var notes []struct {
		at   time.Duration
		text string
	}
	for i := range roles {
		roles[i] = []span{{from: 0, to: end, role: rolefsm.Idle}}
	}
	crashedAt := make([]time.Duration, n)
	for i := range crashedAt {
		crashedAt[i] = -1
	}
	partAt := time.Duration(-1)
	sc := bufio.NewScanner(strings.NewReader(trace))
	for sc.Scan() {
		line := sc.Text()
		if m := traceStep.FindStringSubmatch(line); m != nil {
			at := seconds(m[1])
			k, _ := strconv.Atoi(m[2])
			from, err1 := rolefsm.ParseRole(m[3])
			to, err2 := rolefsm.ParseRole(m[4])
			sig, err3 := rolefsm.ParseSignal(m[5])
			if err1 != nil || err2 != nil || err3 != nil || k < 1 || k > n {
				return fmt.Errorf("sim svg: a trace line it cannot read: %q", line)
			}
			lane := roles[k-1]
			lane[len(lane)-1].to = at
			roles[k-1] = append(lane, span{from: at, to: end, role: to})
			marks = append(marks, struct {
				at   time.Duration
				node int
				t    rolefsm.Transition
			}{at, k - 1, rolefsm.Transition{From: from, To: to, Signal: sig}})
			continue
		}
		m := traceFault.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, what := seconds(m[1]), m[2]
		f := strings.Fields(what)
		switch {
		case what == "partition healed":
			if partAt >= 0 {
				parts = append(parts, span{from: partAt, to: at, label: "partition"})
				partAt = -1
			}
		case f[0] == "partition":
			if partAt >= 0 {
				parts = append(parts, span{from: partAt, to: at, label: "partition"})
			}
			partAt = at
		case (f[0] == "crash" || f[0] == "revive") && len(f) == 2:
			k, err := strconv.Atoi(strings.TrimPrefix(f[1], "n"))
			if err != nil || k < 1 || k > n {
				return fmt.Errorf("sim svg: a trace line it cannot read: %q", line)
			}
			if f[0] == "crash" {
				crashedAt[k-1] = at
			} else if crashedAt[k-1] >= 0 {
				down[k-1] = append(down[k-1], span{from: crashedAt[k-1], to: at, label: "crashed"})
				crashedAt[k-1] = -1
			}
		default:
			notes = append(notes, struct {
				at   time.Duration
				text string
			}{at, what})
		}
	}
	if partAt >= 0 {
		parts = append(parts, span{from: partAt, to: end, label: "partition"})
	}
	for i, at := range crashedAt {
		if at >= 0 {
			down[i] = append(down[i], span{from: at, to: end, label: "crashed"})
		}
	}

	plot := float64(svgWidth - svgLeft - svgRight)
	x := func(d time.Duration) float64 {
		if end <= 0 {
			return svgLeft
		}
		return svgLeft + plot*float64(d)/float64(end)
	}
	laneY := func(i int) float64 { return float64(svgTop + i*(svgLane+svgGap)) }
	height := svgTop + n*(svgLane+svgGap) + svgBottom

	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	title := fmt.Sprintf("rolefsm sim: seed %d, %d nodes, %s, heartbeat %v × %d, policy %s, faults %v",
		c.Seed, n, fmtDur(end), c.Heartbeat.Interval(), c.Heartbeat.MissThreshold(), c.Policy.Name(), c.Faults)
	fmt.Fprintf(b, "<title>%s</title>\n", html.EscapeString(title))
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	fmt.Fprintf(b, `<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft, html.EscapeString(title))
	// The legend.
	lx := float64(svgLeft)
	for _, r := range []rolefsm.Role{rolefsm.Leader, rolefsm.Candidate, rolefsm.Replica, rolefsm.Idle} {
		fmt.Fprintf(b, `<rect x="%.1f" y="28" width="12" height="12" fill="%s"/><text x="%.1f" y="38">%v</text>`+"\n", lx, roleColours[r], lx+16, r)
		lx += 90
	}
	fmt.Fprintf(b, `<rect x="%.1f" y="28" width="12" height="12" fill="#e15759" fill-opacity="0.25"/><text x="%.1f" y="38">partition</text>`+"\n", lx, lx+16)
	lx += 90
	fmt.Fprintf(b, `<rect x="%.1f" y="28" width="12" height="12" fill="url(#crashed)"/><text x="%.1f" y="38">crashed</text>`+"\n", lx, lx+16)
	lx += 90
	fmt.Fprintf(b, `<line x1="%.1f" y1="28" x2="%.1f" y2="40" stroke="#000" stroke-width="1.5"/><text x="%.1f" y="38">transition</text>`+"\n", lx+6, lx+6, lx+16)
	b.WriteString(`<defs><pattern id="crashed" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
		`<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#555" stroke-width="2"/></pattern></defs>` + "\n")
	// The lanes.
	for i := range n {
		y := laneY(i)
		fmt.Fprintf(b, `<text x="8" y="%.1f" dominant-baseline="middle">n%d</text>`+"\n", y+svgLane/2, i+1)
		for _, s := range roles[i] {
			if s.to <= s.from {
				continue
			}
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>n%d %v, %s to %s</title></rect>`+"\n",
				x(s.from), y, x(s.to)-x(s.from), svgLane, roleColours[s.role], i+1, s.role, fmtDur(s.from), fmtDur(s.to))
		}
		for _, s := range down[i] {
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="url(#crashed)" opacity="0.8"><title>n%d crashed, %s to %s</title></rect>`+"\n",
				x(s.from), y, max(x(s.to)-x(s.from), 1), svgLane, i+1, fmtDur(s.from), fmtDur(s.to))
		}
	}
	// Partitions shade every lane.
	for _, s := range parts {
		fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#e15759" fill-opacity="0.25"><title>partition, %s to %s</title></rect>`+"\n",
			x(s.from), svgTop-2, max(x(s.to)-x(s.from), 1), n*(svgLane+svgGap)-svgGap+4, fmtDur(s.from), fmtDur(s.to))
	}
	// Transitions, as ticks on their lane.
	for _, m := range marks {
		y := laneY(m.node)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-width="1.5"><title>%s n%d %v</title></line>`+"\n",
			x(m.at), y, x(m.at), y+svgLane, fmtDur(m.at), m.node+1, m.t)
	}
	// Other faults (loss, disk pressure, closes), as small marks under the lanes.
	axisY := float64(svgTop + n*(svgLane+svgGap))
	for _, f := range notes {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#e15759"><title>%s %s</title></circle>`+"\n", x(f.at), axisY+2, fmtDur(f.at), html.EscapeString(f.text))
	}
	// The time axis: a tick every second, or every five on a long run.
	every := time.Second
	for end/every > 20 {
		every *= 5
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#000"/>`+"\n", svgLeft, axisY+8, svgWidth-svgRight, axisY+8)
	for t := time.Duration(0); t <= end; t += every {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000"/><text x="%.1f" y="%.1f" text-anchor="middle">%gs</text>`+"\n",
			x(t), axisY+8, x(t), axisY+13, x(t), axisY+26, t.Seconds())
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func seconds(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(math.Round(f*1000)) * time.Millisecond
}
