package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/rolefsm/rolefsm"
)

// maxLine bounds one JSON line; a longer one is malformed input. (A
// variable, for the test of the bound.)
var maxLine = 64 << 20

// bom is the UTF-8 byte order mark some editors put at a file's start.
var bom = []byte("\xef\xbb\xbf")

// replayLine is what replay reads from each line: the step ({"to",
// "signal"}) and, from the coordinator's own audit lines, the attributes
// it checks the step against. Unknown fields are ignored, so slog's
// time, level and msg pass through.
type replayLine struct {
	To     *string `json:"to"`
	Signal *string `json:"signal"`
	From   *string `json:"from"`
	Gen    *uint64 `json:"generation"`
	OldGen *uint64 `json:"seq"` // the audit log's name for it before v0.1.0
	Name   *string `json:"name"`
	Error  *string `json:"error"`
	Cold   bool    `json:"cold_start"`
}

// replayError is a malformed line: it stops the replay with exit 2.
type replayError struct {
	line int
	err  error
}

func (e *replayError) Error() string { return fmt.Sprintf("line %d: %s", e.line, userError(e.err)) }

const replaySynopsis = `replay [-from ROLE] [-name CHANNEL] FILE|-

Replays JSON lines through a Coordinator and prints each step and the
final stats. A line is either a step, {"to":"Candidate","signal":"MissedHeartbeats"},
or an audit line as the coordinator's logger writes it with
slog.NewJSONHandler. For audit lines, "from" must match the replayed role
and "generation" ("seq" in logs written before v0.1.0) must be the one the commit reaches; recorded rejections
(lines with an "error") are reported and skipped; other log lines (no
"to" and no "signal") are skipped. A log of several channels needs
-name. Exit 0 when every step commits, 1 at the first rejected or
inconsistent step or when nothing was replayed, 2 for a malformed line
or bad arguments.`

func runReplay(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("replay", replaySynopsis, stderr)
	fromFlag := fs.String("from", "", "the role to start in (default: the \"from\" of the first audit line, else Idle)")
	nameFlag := fs.String("name", "", "replay only audit lines whose \"name\" is CHANNEL (lines without a name are skipped)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(fs, fmt.Errorf("want one FILE (or - for stdin), got %d arguments", fs.NArg()))
	}
	var start *rolefsm.Role
	if *fromFlag != "" {
		r, err := rolefsm.ParseRole(*fromFlag)
		if err != nil {
			return usageError(fs, fmt.Errorf("-from: %w", err))
		}
		start = &r
	}
	in := stdin
	if path := fs.Arg(0); path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return usageError(fs, err)
		}
		defer f.Close()
		in = f
	}
	code, err := replay(in, start, *nameFlag, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "rolefsm replay:", err)
	}
	return code
}

// replay drives a Coordinator with the lines of in. It returns the exit
// code and, for a non-zero one, the error that explains it.
func replay(in io.Reader, start *rolefsm.Role, name string, stdout io.Writer) (int, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	var c *rolefsm.Coordinator
	newCoordinator := func(r rolefsm.Role) error {
		var err error
		c, err = rolefsm.NewCoordinator(rolefsm.WithInitialRole(r), rolefsm.WithName(name))
		if err == nil {
			fmt.Fprintf(stdout, "start: %v\n", r)
		}
		return err
	}
	if start != nil {
		if err := newCoordinator(*start); err != nil {
			return exitUsage, err
		}
	}
	ctx := context.Background()
	lineNo, content, steps, skipped, rejections := 0, 0, 0, 0, 0
	channels := map[string]int{} // the steps of each channel named in the log
	first := ""                  // the channel of the first named step, without -name
	// malformed ends the replay at a line it cannot read (exit 2), with
	// the same verdict line as every other ending.
	malformed := func(err error) (int, error) {
		fmt.Fprintf(stdout, "replayed %s, skipped %s; stopped at line %d: malformed\n", countOf(steps, "step"), countOf(skipped, "line"), lineNo)
		return exitUsage, &replayError{lineNo, err}
	}
	for sc.Scan() {
		lineNo++
		raw := bytes.TrimSpace(sc.Bytes())
		if lineNo == 1 {
			raw = bytes.TrimPrefix(raw, bom)
		}
		if len(raw) == 0 {
			continue
		}
		content++
		l, err := parseLine(raw)
		if err != nil {
			return malformed(err)
		}
		if l.To == nil && l.Signal == nil {
			skipped++ // some other log line
			continue
		}
		if l.Name != nil {
			channels[*l.Name]++
		}
		switch {
		case name != "" && (l.Name == nil || *l.Name != name):
			skipped++ // another channel's, or a line that names none
			continue
		case name == "" && l.Name != nil && first == "":
			first = *l.Name
		case name == "" && l.Name != nil && *l.Name != first:
			return malformed(fmt.Errorf("this line is channel %q, the lines before it channel %q: "+
				"the log holds several channels; replay one at a time with -name CHANNEL", *l.Name, first))
		}
		if l.To == nil || l.Signal == nil {
			return malformed(errors.New(`a step needs both "to" and "signal"`))
		}
		to, err := rolefsm.ParseRole(*l.To)
		if err != nil {
			return malformed(err)
		}
		sig, err := rolefsm.ParseSignal(*l.Signal)
		if err != nil {
			return malformed(err)
		}
		var from *rolefsm.Role
		if l.From != nil {
			r, err := rolefsm.ParseRole(*l.From)
			if err != nil {
				return malformed(err)
			}
			from = &r
		}
		if c == nil {
			initial := rolefsm.Idle
			if from != nil {
				initial = *from
			}
			if err := newCoordinator(initial); err != nil {
				return exitUsage, err
			}
		}
		if l.Error != nil {
			fmt.Fprintf(stdout, "line %d: skipped recorded rejection: %s\n", lineNo, *l.Error)
			skipped++
			rejections++
			continue
		}
		// stop ends the replay at this line: the stats, then the
		// verdict, as the last line of every replay that had a step.
		stop := func(what string, err error) (int, error) {
			printStats(stdout, c)
			fmt.Fprintf(stdout, "replayed %s, skipped %s; stopped at line %d: %s\n", countOf(steps, "step"), countOf(skipped, "line"), lineNo, what)
			return exitRejected, &replayError{lineNo, err}
		}
		if from != nil && *from != c.Role() {
			fmt.Fprintf(stdout, "line %d: inconsistent: the log says from %v, the replay is in %v\n", lineNo, *from, c.Role())
			return stop("inconsistent", fmt.Errorf("the log says from %v, the replay is in %v: a line is missing or out of order", *from, c.Role()))
		}
		stepCtx := ctx
		if l.Cold {
			stepCtx = rolefsm.ColdStart(ctx) // counted as the node counted it
		}
		t, err := c.Transition(stepCtx, to, sig)
		if err != nil {
			fmt.Fprintf(stdout, "line %d: rejected: %v\n", lineNo, err)
			return stop("rejected", err)
		}
		steps++
		gen := c.Lease().Generation
		fmt.Fprintf(stdout, "line %d: %v ok, generation %d\n", lineNo, t, gen)
		committed := t.From != rolefsm.Idle || t.To != rolefsm.Idle // the idempotent close commits nothing
		if l.Gen != nil && *l.Gen != gen && committed {
			fmt.Fprintf(stdout, "line %d: inconsistent: the log says generation %d, the replay reached %d\n", lineNo, *l.Gen, gen)
			return stop("inconsistent", fmt.Errorf("the log says generation %d, the replay reached %d", *l.Gen, gen))
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("longer than %d MiB", maxLine>>20)
		}
		lineNo++
		return malformed(err)
	}
	if steps == 0 && rejections == 0 {
		fmt.Fprintf(stdout, "nothing replayed: %s\n", nothingReason(name, content, channels))
		return exitRejected, errors.New("nothing replayed")
	}
	printStats(stdout, c)
	fmt.Fprintf(stdout, "replayed %s, skipped %s\n", countOf(steps, "step"), countOf(skipped, "line"))
	return exitOK, nil
}

// nothingReason says why a replay found no step.
func nothingReason(name string, lines int, channels map[string]int) string {
	if lines == 0 {
		return "the input is empty"
	}
	switch {
	case name == "":
		return fmt.Sprintf("no step among %s", countOf(lines, "line"))
	case len(channels) == 0:
		return fmt.Sprintf("no step of channel %q: the log's lines name no channel (-name reads the audit lines' \"name\")", name)
	}
	var held []string
	for ch, n := range channels {
		held = append(held, fmt.Sprintf("%q (%s)", ch, countOf(n, "step")))
	}
	sort.Strings(held)
	msg := fmt.Sprintf("no step of channel %q; the log holds %s", name, strings.Join(held, ", "))
	for ch := range channels {
		if strings.EqualFold(ch, name) {
			msg += fmt.Sprintf(". Channel names are compared exactly: did you mean %q?", ch)
			break
		}
	}
	return msg
}

// countOf is "1 step", "2 steps".
func countOf(n int, noun string) string {
	return fmt.Sprintf("%d %s", n, plural(n, noun, noun+"s"))
}

// parseLine reads one JSON line, with errors in the reader's terms.
func parseLine(raw []byte) (replayLine, error) {
	var l replayLine
	if raw[0] != '{' {
		return l, errors.New("not a JSON object (a line is an object: {\"to\":...,\"signal\":...})")
	}
	err := json.Unmarshal(raw, &l)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return l, fmt.Errorf("not valid JSON at byte %d: %w", syntax.Offset, syntax)
	case errors.As(err, &typ):
		want := "a string"
		if typ.Field == "generation" || typ.Field == "seq" {
			want = "a whole number, 0 or more"
		}
		return l, fmt.Errorf("%q is %s, want %s", typ.Field, jsonKind(typ.Value), want)
	case err != nil:
		return l, fmt.Errorf("not valid JSON: %w", err)
	}
	if l.Gen == nil {
		l.Gen = l.OldGen
	}
	return l, nil
}

// jsonKind names what json's UnmarshalTypeError saw.
func jsonKind(v string) string {
	switch {
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ")
	case v == "number":
		return "a number"
	case v == "bool":
		return "true or false"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	case v == "string":
		return "a string"
	}
	return v
}

// printStats prints the coordinator's final stats.
func printStats(w io.Writer, c *rolefsm.Coordinator) {
	st := c.Stats()
	fmt.Fprintf(w, "role: %v\ngeneration: %d\nleader changes: %d\nelection thrash: %d\ncold starts: %d\n",
		st.Role, st.Generation, st.LeaderChanges, st.ElectionThrash, st.ColdStarts)
	keys := make([]rolefsm.Transition, 0, len(st.Transitions))
	for t := range st.Transitions {
		keys = append(keys, t)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	var b strings.Builder
	for _, t := range keys {
		fmt.Fprintf(&b, "  %v: %d\n", t, st.Transitions[t])
	}
	if b.Len() > 0 {
		fmt.Fprintf(w, "transitions:\n%s", b.String())
	}
}
