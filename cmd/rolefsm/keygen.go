package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"

	"github.com/rolefsm/rolefsm/replica/udp"
)

// runKeygen writes a new node private key to a file of mode 0600 and
// prints its public key, for the peers' -peers.
func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", "keygen -out FILE\n\nWrites a new node private key (X25519) to FILE, mode 0600, never over\nan existing file, and prints its public key: give it to the peers.", stderr)
	out := fs.String("out", "", "the private key file to write (required)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "rolefsm keygen: "+format+"\n", a...)
		return code
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *out == "":
		return usageError(fs, fmt.Errorf("-out: give the file to write the private key to (it is never printed)"))
	}
	key, err := udp.GenerateKey()
	if err != nil {
		return fail(exitRejected, "%v", err)
	}
	if err := udp.WritePrivateKey(*out, key); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return fail(exitRejected, "%s exists: a key file is never overwritten", *out)
		}
		return fail(exitRejected, "%v", err)
	}
	fmt.Fprintln(stdout, key.Public())
	return exitOK
}

// runPubkey prints the public key of a private key file.
func runPubkey(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("pubkey", "pubkey -key-file FILE\n\nPrints the public key of a node's private key file.", stderr)
	keyFile := fs.String("key-file", "", "the private key file (required)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *keyFile == "":
		return usageError(fs, fmt.Errorf("-key-file: give the private key file"))
	}
	key, err := udp.LoadPrivateKey(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "rolefsm pubkey: %v\n", err)
		return exitRejected
	}
	fmt.Fprintln(stdout, key.Public())
	return exitOK
}
