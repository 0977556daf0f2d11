// Command rolefsm simulates a cluster of replicas, prints the
// replica-role transition matrix, checks single transitions against it,
// replays audit logs through it, and runs a real replica node.
//
//	rolefsm sim [-nodes 5] [-seed N] [-steps 400] [-faults LIST] [-policy tail|upstream] [-sweep N]
//	rolefsm matrix [-format table|markdown|mermaid|dot|json]
//	rolefsm check FROM TO SIGNAL    print "ok" (exit 0) or the error (exit 1)
//	rolefsm replay [-from ROLE] [-name CHANNEL] FILE|-
//	rolefsm keygen -out FILE        write a new node private key (mode 0600), print its public key
//	rolefsm pubkey -key-file FILE   print a private key file's public key
//	rolefsm node -id N -listen ADDR -peers ID=ADDR@PUBLICKEY,... -channels LIST -key-file FILE [-http ADDR]
//	                                run one replica node over UDP (see "rolefsm node -h")
//
// Names are matched without regard to case. A name that is not a role
// or a signal, or a wrong number of arguments, exits 2 with the list of
// valid names. Results go to stdout; usage, progress and errors to
// stderr. Every subcommand takes -h.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rolefsm/rolefsm"
)

// Exit codes.
const (
	exitOK       = 0
	exitRejected = 1 // the transition (or a replayed step) is rejected
	exitUsage    = 2 // bad arguments or names
	// exitInterrupted ends a sweep stopped by SIGINT, after the partial
	// table (128 + SIGINT's number, as shells report it).
	exitInterrupted = 130
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: rolefsm <command> [arguments]

commands:
  sim [-seed N] [-sweep N] [-faults LIST] [-policy P]
                          simulate a cluster under faults and check that its roles converge
  matrix [-format F]      print the transition matrix (table, markdown, mermaid, dot, json)
  check FROM TO SIGNAL    check one transition: "ok" (exit 0) or the error (exit 1)
  replay [-from ROLE] FILE|-
                          replay JSON lines (steps or audit lines) through a coordinator
  keygen -out FILE        write a new node private key (mode 0600) and print its public key
  pubkey -key-file FILE   print the public key of a node's private key file
  node -id N -listen ADDR -peers ID=ADDR@PUBLICKEY,... -channels LIST -key-file FILE [-http ADDR]
                          run one replica node: UDP heartbeats, GET /status and /metrics

Run "rolefsm <command> -h" for a command's options.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "sim":
		return runSim(args[1:], stdout, stderr)
	case "matrix":
		return runMatrix(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "replay":
		return runReplay(args[1:], stdin, stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "pubkey":
		return runPubkey(args[1:], stdout, stderr)
	case "node":
		return runNode(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "rolefsm: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

// newFlagSet returns a flag set that prints its usage to stderr and
// reports errors instead of exiting.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: rolefsm %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns the exit code to stop with, or -1
// to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		return exitUsage
	}
	return -1
}

func runMatrix(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("matrix", "matrix [-format table|markdown|mermaid|dot|json]", stderr)
	format := fs.String("format", "table", "output format: "+formatNames())
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "rolefsm matrix: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	render, ok := formats[strings.ToLower(*format)]
	if !ok {
		fmt.Fprintf(stderr, "rolefsm matrix: unknown format %q (valid: %s)\n", *format, formatNames())
		return exitUsage
	}
	if err := render(stdout); err != nil {
		fmt.Fprintln(stderr, "rolefsm matrix:", err)
		return exitRejected
	}
	return exitOK
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "check FROM TO SIGNAL", stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 3 {
		fmt.Fprintf(stderr, "rolefsm check: want 3 arguments, FROM TO SIGNAL; got %d\n", fs.NArg())
		fs.Usage()
		fmt.Fprintf(stderr, "roles: %s\nsignals: %s\n", names(rolefsm.Roles()), names(rolefsm.Signals()))
		return exitUsage
	}
	from, err1 := rolefsm.ParseRole(fs.Arg(0))
	to, err2 := rolefsm.ParseRole(fs.Arg(1))
	sig, err3 := rolefsm.ParseSignal(fs.Arg(2))
	if err := errors.Join(err1, err2, err3); err != nil {
		for _, e := range []error{err1, err2, err3} {
			if e != nil {
				fmt.Fprintln(stderr, "rolefsm check:", userError(e))
			}
		}
		return exitUsage
	}
	if _, err := rolefsm.Apply(from, to, sig); err != nil {
		fmt.Fprintln(stdout, err)
		return exitRejected
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

func names[T fmt.Stringer](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return strings.Join(s, ", ")
}
