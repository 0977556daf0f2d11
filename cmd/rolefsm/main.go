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
//	rolefsm status HOST:PORT...     one table of the cluster, from each node's -http address
//	rolefsm version                 print the module versions the binary was built from
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
	"regexp"
	"strings"
	"time"

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
  status HOST:PORT...     one table of the cluster from every node's GET /status
  version                 print the versions of the modules the binary was built from

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
	case "version":
		return runVersion(args[1:], stdout, stderr)
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "rolefsm: unknown command %q\nrun \"rolefsm help\" for the commands\n", args[0])
		return exitUsage
	}
}

// newFlagSet returns a flag set that prints its usage to stderr for -h
// and reports errors instead of exiting (see parseFlags).
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
// to go on. -h prints the whole usage (exit 0); a bad flag or value is
// a usage error (usageError), without the whole usage.
func parseFlags(fs *flag.FlagSet, args []string) int {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard) // the flag package's own report of an error
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return exitOK
	case err != nil:
		return usageError(fs, explainFlagError(fs, err))
	}
	return -1
}

// flagValueError matches the flag package's reports of a bad value:
// "invalid value "500" for flag -heartbeat: parse error", and for a
// boolean "invalid boolean value "x" for -insecure: parse error".
var flagValueError = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]+): (.*)$`)

// explainFlagError rewrites the flag package's report of a bad value as
// "-FLAG VALUE: want WHAT", saying what kind of value the flag takes.
func explainFlagError(fs *flag.FlagSet, err error) error {
	m := flagValueError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	value, name, why := m[1], m[2], m[3]
	if f := fs.Lookup(name); f != nil && why == "parse error" {
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				why = "want a duration such as 500ms or 2s"
			case uint, uint64:
				why = "want a whole number, 0 or more"
			case int, int64:
				why = "want a whole number"
			case float64:
				why = "want a number"
			case bool:
				why = "want true or false"
			}
		}
	}
	return fmt.Errorf("-%s %s: %s", name, value, why)
}

// usageError reports a usage error of fs's command: one line that says
// what is wrong (naming the flag or argument), then one that points at
// the command's help. It returns exitUsage.
func usageError(fs *flag.FlagSet, err error) int {
	fmt.Fprintf(fs.Output(), "rolefsm %s: %v\nrun \"rolefsm %s -h\" for its usage\n", fs.Name(), userError(err), fs.Name())
	return exitUsage
}

func runMatrix(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("matrix", "matrix [-format table|markdown|mermaid|dot|json]", stderr)
	format := fs.String("format", "table", "output format: "+formatNames())
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	render, ok := formats[strings.ToLower(*format)]
	if !ok {
		return usageError(fs, fmt.Errorf("-format %q: want one of %s", *format, formatNames()))
	}
	if err := render(stdout); err != nil {
		fmt.Fprintln(stderr, "rolefsm matrix:", err)
		return exitRejected
	}
	return exitOK
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", fmt.Sprintf("check FROM TO SIGNAL\n\nroles: %s\nsignals: %s",
		names(rolefsm.Roles()), names(rolefsm.Signals())), stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 3 {
		return usageError(fs, fmt.Errorf("want 3 arguments, FROM TO SIGNAL; got %d", fs.NArg()))
	}
	from, err1 := rolefsm.ParseRole(fs.Arg(0))
	to, err2 := rolefsm.ParseRole(fs.Arg(1))
	sig, err3 := rolefsm.ParseSignal(fs.Arg(2))
	// The first name that is wrong; its error lists the valid ones.
	for _, e := range []error{err1, err2, err3} {
		if e != nil {
			return usageError(fs, e)
		}
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
