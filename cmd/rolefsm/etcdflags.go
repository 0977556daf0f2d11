package main

// How rolefsm node reaches etcd: the endpoints of -etcd, TLS (-etcd-ca,
// -etcd-cert, -etcd-key) and a user (-etcd-user, the password from
// -etcd-password-file or $ROLEFSM_ETCD_PASSWORD), checked at parse
// time, and the errors of a failed start said in those terms. Apart
// from node.go so that node.go's edits stay small.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rolefsm/rolefsm/rolefsmetcd"
)

// etcdPasswordEnv is the environment variable the etcd user's password
// may come from (never a flag: a flag's value shows in ps).
const etcdPasswordEnv = "ROLEFSM_ETCD_PASSWORD"

// etcdFlags are the connection flags of -election etcd besides -etcd,
// as given.
type etcdFlags struct {
	ca, cert, key, user, passwordFile *string
}

// given names the first of the flags that was given, "" if none.
func (f etcdFlags) given() string {
	for _, fl := range []struct {
		name  string
		value *string
	}{{"-etcd-ca", f.ca}, {"-etcd-cert", f.cert}, {"-etcd-key", f.key}, {"-etcd-user", f.user},
		{"-etcd-password-file", f.passwordFile}} {
		if *fl.value != "" {
			return fl.name
		}
	}
	return ""
}

// etcdAccess is how the node talks to etcd besides the endpoints.
type etcdAccess struct {
	tls            *tls.Config // nil: in the clear
	user, password string      // user "": no authentication
	prefix         string      // -etcd-prefix, for the errors
}

// parse checks the endpoints (comma-separated HOST:PORT, http:// or
// https:// URLs) and the flags; prefix is -etcd-prefix, and getenv
// reads the environment. Its errors name the flag.
func (f etcdFlags) parse(endpoints, prefix string, getenv func(string) string) ([]string, etcdAccess, error) {
	a := etcdAccess{prefix: prefix}
	var eps []string
	schemes := map[string]string{} // scheme → an endpoint of it
	for _, ep := range strings.Split(endpoints, ",") {
		ep = strings.TrimSpace(ep)
		norm, scheme, err := parseEndpoint(ep)
		if err != nil {
			return nil, a, err
		}
		if scheme != "" {
			schemes[scheme] = ep
		}
		eps = append(eps, norm)
	}
	if schemes["http"] != "" && schemes["https"] != "" {
		return nil, a, fmt.Errorf("-etcd: %s and %s: http:// and https:// mixed; etcd's client talks to every endpoint the same way",
			schemes["http"], schemes["https"])
	}
	tlsFlag := ""
	for _, fl := range []struct {
		name  string
		value *string
	}{{"-etcd-ca", f.ca}, {"-etcd-cert", f.cert}, {"-etcd-key", f.key}} {
		if *fl.value != "" && tlsFlag == "" {
			tlsFlag = fl.name
		}
	}
	if schemes["http"] != "" && tlsFlag != "" {
		return nil, a, fmt.Errorf("-etcd: %s is http:// (in the clear) but %s asks for TLS: give https:// endpoints", schemes["http"], tlsFlag)
	}
	if schemes["https"] != "" || tlsFlag != "" {
		var err error
		if a.tls, err = f.tlsConfig(); err != nil {
			return nil, a, err
		}
	}
	password, err := f.password(getenv)
	if err != nil {
		return nil, a, err
	}
	a.user, a.password = *f.user, password
	return eps, a, nil
}

// parseEndpoint checks one endpoint. It returns what etcd's client is
// given (SCHEME://HOST:PORT, or HOST:PORT as typed) and the scheme, ""
// for HOST:PORT.
func parseEndpoint(ep string) (norm, scheme string, err error) {
	hostPort := ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		switch {
		case err != nil:
			return "", "", fmt.Errorf("-etcd: %q is not a URL", ep)
		case u.Scheme != "http" && u.Scheme != "https":
			return "", "", fmt.Errorf("-etcd: %q: the scheme is %s, want http:// or https://", ep, u.Scheme)
		case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			return "", "", fmt.Errorf("-etcd: %q: want %s://HOST:PORT and nothing more (the user is -etcd-user)", ep, u.Scheme)
		}
		hostPort, scheme = u.Host, u.Scheme
	}
	_, port, err := net.SplitHostPort(hostPort)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || n == 0 {
		return "", "", fmt.Errorf("-etcd: %q is not HOST:PORT, http://HOST:PORT or https://HOST:PORT", ep)
	}
	if scheme == "" {
		return ep, "", nil
	}
	return scheme + "://" + hostPort, scheme, nil
}

// tlsConfig reads -etcd-ca, -etcd-cert and -etcd-key. Plain crypto/tls
// rather than etcd's transport.TLSInfo: three files need no more, and
// its errors are checked here, at parse time, naming the flag.
func (f etcdFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if *f.ca != "" { // else the system's roots
		pem, err := os.ReadFile(*f.ca)
		if err != nil {
			return nil, fmt.Errorf("-etcd-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-etcd-ca %s: no PEM certificate in it", *f.ca)
		}
	}
	switch {
	case (*f.cert == "") != (*f.key == ""):
		return nil, errors.New("-etcd-cert and -etcd-key: give both (the client certificate and its key) or neither")
	case *f.cert != "":
		cert, err := tls.LoadX509KeyPair(*f.cert, *f.key)
		if err != nil {
			return nil, fmt.Errorf("-etcd-cert %s, -etcd-key %s: %w", *f.cert, *f.key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// password reads the etcd user's password from -etcd-password-file or
// the environment: exactly one of them with -etcd-user, neither
// without.
func (f etcdFlags) password(getenv func(string) string) (string, error) {
	env := getenv(etcdPasswordEnv)
	switch {
	case *f.user == "" && *f.passwordFile != "":
		return "", errors.New("-etcd-password-file: give -etcd-user, whose password it holds")
	case *f.user == "" && env != "":
		return "", fmt.Errorf("$%s is set: give -etcd-user, whose password it is", etcdPasswordEnv)
	case *f.user == "":
		return "", nil
	case *f.passwordFile != "" && env != "":
		return "", fmt.Errorf("-etcd-password-file and $%s: choose one", etcdPasswordEnv)
	case *f.passwordFile == "" && env == "":
		return "", fmt.Errorf("-etcd-user %s: give its password in -etcd-password-file or $%s", *f.user, etcdPasswordEnv)
	case env != "":
		return env, nil
	}
	return readPasswordFile(*f.passwordFile)
}

// maxPassword bounds a password file: a longer one is something else.
const maxPassword = 4096

// readPasswordFile reads a password file, which only its owner may
// read or write (as ssh demands of a private key), and drops the line
// end.
func readPasswordFile(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("-etcd-password-file: %w", err)
	}
	defer file.Close()
	info, err := file.Stat() // of the file opened, not of the path again
	if err != nil {
		return "", fmt.Errorf("-etcd-password-file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("-etcd-password-file %s: permissions %04o are too open, group or others may read it: chmod 600 %s",
			path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(file, maxPassword+1))
	if err != nil {
		return "", fmt.Errorf("-etcd-password-file: %w", err)
	}
	if len(data) > maxPassword {
		return "", fmt.Errorf("-etcd-password-file %s: more than %d bytes, not a password", path, maxPassword)
	}
	password := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if password == "" {
		return "", fmt.Errorf("-etcd-password-file %s: empty", path)
	}
	return password, nil
}

// clientConfig is etcd's client configuration for endpoints.
func (a etcdAccess) clientConfig(endpoints []string) clientv3.Config {
	return clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: a.tls, Username: a.user, Password: a.password}
}

// etcdAuthError is etcd refusing the node's user, or the lack of one,
// at start.
type etcdAuthError struct {
	endpoints []string
	user      string // "" if the node gave none
	prefix    string
	err       error // etcd's
}

func (e *etcdAuthError) Error() string {
	at := fmt.Sprintf("etcd at %v: ", e.endpoints)
	switch {
	case errors.Is(e.err, rpctypes.ErrUserEmpty):
		return at + "authentication failed: etcd has authentication enabled and no user was given: " +
			"give -etcd-user and its password (-etcd-password-file or $" + etcdPasswordEnv + ")"
	case errors.Is(e.err, rpctypes.ErrAuthFailed):
		return at + fmt.Sprintf("authentication failed for user %q: wrong user name or password", e.user)
	case errors.Is(e.err, rpctypes.ErrPermissionDenied):
		return at + fmt.Sprintf("user %q may not use the keys under -etcd-prefix %s: permission denied "+
			"(grant its role readwrite over the prefix)", e.user, e.prefix)
	}
	return at + fmt.Sprintf("authentication failed for user %q: %v", e.user, e.err)
}

func (e *etcdAuthError) Unwrap() error { return e.err }

// etcdTLSError is a TLS handshake with etcd that failed at start.
type etcdTLSError struct {
	endpoint string
	err      error // crypto/tls's or crypto/x509's
}

func (e *etcdTLSError) Error() string {
	var hint string
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var record tls.RecordHeaderError
	switch {
	case errors.As(e.err, &unknown):
		hint = ": the server's certificate is not signed by a CA of -etcd-ca"
	case errors.As(e.err, &host):
		hint = ": the server's certificate is not for the address in -etcd"
	case errors.As(e.err, &record):
		hint = ": the server does not speak TLS (give http:// endpoints, without the TLS flags)"
	case errors.Is(e.err, errHungUp):
		hint = " in the handshake: it may not speak TLS (give http:// endpoints, without the TLS flags)"
	case isRemoteAlert(e.err):
		hint = ": the server refused this client: it wants a client certificate its CA signed (-etcd-cert, -etcd-key)"
	}
	return fmt.Sprintf("etcd at %s: TLS handshake failed: %v%s", e.endpoint, e.err, hint)
}

func (e *etcdTLSError) Unwrap() error { return e.err }

// explain turns an error of starting against etcd (from etcd's client
// or rolefsmetcd.New) into one that says what failed: authentication,
// TLS, or else etcd unreachable, naming the endpoints as
// rolefsmetcd.New does (etcd's client, which authenticates when given a
// user, names none).
func (a etcdAccess) explain(ctx context.Context, endpoints []string, err error) error {
	for _, authErr := range []error{rpctypes.ErrUserEmpty, rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied,
		rpctypes.ErrInvalidAuthToken, rpctypes.ErrAuthOldRevision, rpctypes.ErrUserNotFound} {
		if errors.Is(err, authErr) {
			return &etcdAuthError{endpoints: endpoints, user: a.user, prefix: a.prefix, err: err}
		}
	}
	if a.tls != nil {
		// gRPC reports a failed handshake as a string at best; a
		// handshake of our own yields crypto/tls's typed error.
		if tlsErr := probeTLS(ctx, endpoints, a.tls); tlsErr != nil {
			return tlsErr
		}
	}
	if errors.Is(err, rolefsmetcd.ErrUnreachable) || errors.Is(err, rolefsmetcd.ErrBadConfig) {
		return err
	}
	return fmt.Errorf("%w at %v: %w", rolefsmetcd.ErrUnreachable, endpoints, err)
}

// probeTLS shakes hands with each endpoint as etcd's client would and
// returns the first TLS failure; nil if there is none (an endpoint
// that does not answer is no TLS failure).
func probeTLS(ctx context.Context, endpoints []string, cfg *tls.Config) *etcdTLSError {
	const patience = 2 * time.Second
	for _, ep := range endpoints {
		hostPort := ep
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			hostPort = u.Host
		}
		host, _, _ := net.SplitHostPort(hostPort)
		pctx, cancel := context.WithTimeout(ctx, patience)
		err := probe(pctx, hostPort, host, cfg)
		cancel()
		if err != nil {
			return &etcdTLSError{endpoint: ep, err: err}
		}
	}
	return nil
}

// probe returns the TLS failure of one endpoint, nil if there is none.
func probe(ctx context.Context, hostPort, host string, cfg *tls.Config) error {
	raw, err := new(net.Dialer).DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return nil // unreachable: not TLS's doing
	}
	defer raw.Close()
	c := cfg.Clone()
	c.ServerName, c.NextProtos = host, []string{"h2"}
	conn := tls.Client(raw, c)
	if err := conn.HandshakeContext(ctx); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return errHungUp
		}
		if ctx.Err() != nil {
			return nil // no answer: not TLS's doing
		}
		return err
	}
	// In TLS 1.3 the server judges the client's certificate after the
	// client's side of the handshake is done: its verdict comes with
	// the answer to HTTP/2's preface.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err = conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err == nil {
		_, err = conn.Read(make([]byte, 1))
	}
	if isRemoteAlert(err) {
		return err
	}
	return nil
}

// errHungUp is a server that closed the connection in the TLS
// handshake.
var errHungUp = errors.New("the server hung up")

// isRemoteAlert tells a TLS alert from the server from other errors.
func isRemoteAlert(err error) bool {
	var remote *net.OpError
	return errors.As(err, &remote) && remote.Op == "remote error"
}
