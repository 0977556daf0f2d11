package main

import (
	"fmt"
	"io"

	"github.com/rolefsm/rolefsm/replica/udp"
)

// runKeygen prints a new cluster key: a key file line (base64 of 32
// random bytes) for the UDP transport's keyring.
func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", "keygen", stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rolefsm keygen: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	key, err := udp.GenerateKey()
	if err != nil {
		fmt.Fprintf(stderr, "rolefsm keygen: %v\n", err)
		return exitRejected
	}
	fmt.Fprintln(stdout, key)
	return exitOK
}
