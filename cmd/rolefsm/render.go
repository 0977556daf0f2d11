package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/rolefsm/rolefsm"
)

// formats maps each -format value to its renderer. Every renderer draws
// from rolefsm.Matrix(), so none can drift from the declaration.
var formats = map[string]func(io.Writer) error{
	"table":    writeTable,
	"markdown": writeMarkdown,
	"mermaid":  writeMermaid,
	"dot":      writeDOT,
	"json":     writeJSON,
}

func formatNames() string {
	names := make([]string, 0, len(formats))
	for n := range formats {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// writeTable prints the matrix as aligned columns.
func writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tSIGNAL")
	for _, t := range rolefsm.Matrix() {
		fmt.Fprintf(tw, "%v\t%v\t%v\n", t.From, t.To, t.Signal)
	}
	return tw.Flush()
}

// writeMarkdown prints the matrix as a GitHub table.
func writeMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| from | to | signal |\n|---|---|---|\n")
	for _, t := range rolefsm.Matrix() {
		fmt.Fprintf(&b, "| %v | %v | %v |\n", t.From, t.To, t.Signal)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMermaid prints a Mermaid state diagram, which GitHub renders.
// Idle is the initial role.
func writeMermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n    [*] --> Idle\n")
	for _, t := range rolefsm.Matrix() {
		fmt.Fprintf(&b, "    %v --> %v: %v\n", t.From, t.To, t.Signal)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeDOT prints a Graphviz digraph; Idle is the initial role.
func writeDOT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph rolefsm {\n")
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [shape=box, style=rounded];\n")
	b.WriteString("    start [shape=point];\n")
	b.WriteString("    start -> Idle;\n")
	for _, t := range rolefsm.Matrix() {
		fmt.Fprintf(&b, "    %v -> %v [label=%q];\n", t.From, t.To, t.Signal.String())
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type jsonTransition struct {
	From   rolefsm.Role   `json:"from"`
	To     rolefsm.Role   `json:"to"`
	Signal rolefsm.Signal `json:"signal"`
}

type jsonMatrix struct {
	Initial     rolefsm.Role     `json:"initial"`
	Roles       []rolefsm.Role   `json:"roles"`
	Signals     []rolefsm.Signal `json:"signals"`
	Transitions []jsonTransition `json:"transitions"`
}

// writeJSON prints the roles, the signals and the permitted triples.
func writeJSON(w io.Writer) error {
	m := jsonMatrix{Initial: rolefsm.Idle, Roles: rolefsm.Roles(), Signals: rolefsm.Signals()}
	for _, t := range rolefsm.Matrix() {
		m.Transitions = append(m.Transitions, jsonTransition(t))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}
