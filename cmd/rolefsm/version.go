package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// runVersion prints the versions the binary was built from: the
// command's module, then every rolefsm module linked into it, each with
// the version the go command recorded ("(devel)" for a build in a
// checkout, with its commit if the build knew it), and the Go release.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "version", stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(stderr, "rolefsm version: the binary carries no build information")
		return exitRejected
	}
	fmt.Fprint(stdout, describeBuild(bi))
	return exitOK
}

// describeBuild renders bi as runVersion prints it.
func describeBuild(bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rolefsm %s %s\n", moduleVersion(&bi.Main, bi.Settings), bi.GoVersion)
	for _, m := range bi.Deps {
		if strings.HasPrefix(m.Path, "github.com/rolefsm/rolefsm") {
			fmt.Fprintf(&b, "%s %s\n", m.Path, moduleVersion(m, nil))
		}
	}
	return b.String()
}

// moduleVersion is m's version, or its replacement's, and for a build
// in a checkout (version "(devel)") the commit from settings.
func moduleVersion(m *debug.Module, settings []debug.BuildSetting) string {
	v := m.Version
	if m.Replace != nil {
		v = m.Replace.Version
		if v == "" {
			v = "(devel)" // replaced by a directory: a go.work or replace build
		}
		v += " => " + m.Replace.Path
	}
	var rev string
	dirty := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		v += " (commit " + rev[:min(12, len(rev))]
		if dirty {
			v += ", modified"
		}
		v += ")"
	}
	return v
}
