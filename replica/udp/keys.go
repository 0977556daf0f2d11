package udp

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// PrivateKey is a node's static X25519 private key: the node's
// identity. Whoever holds it can speak as that node, and as no other.
type PrivateKey [32]byte

// PublicKey is a node's static X25519 public key, by which its peers
// know it.
type PublicKey [32]byte

// GenerateKey returns a new random private key.
func GenerateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return k, err
	}
	return k, nil
}

// Public returns the key's public key.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		panic("udp: X25519 with the base point failed") // cannot happen: the base point is not of low order
	}
	copy(p[:], pub)
	return p
}

// String returns the private key in base64, the key file's line.
func (k PrivateKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns the public key in base64, as peers are configured
// with it.
func (p PublicKey) String() string { return base64.StdEncoding.EncodeToString(p[:]) }

// ParsePublicKey reads a base64 public key.
func ParsePublicKey(s string) (PublicKey, error) {
	var p PublicKey
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	switch {
	case err != nil:
		return p, fmt.Errorf("%w: public key %q is not base64", ErrBadKey, s)
	case len(b) != len(p):
		return p, fmt.Errorf("%w: public key of %d bytes, want %d", ErrBadKey, len(b), len(p))
	}
	copy(p[:], b)
	// A low-order point would make every Diffie-Hellman with it zero.
	var probe PrivateKey
	probe[0] = 8
	if _, err := curve25519.X25519(probe[:], p[:]); err != nil {
		return PublicKey{}, fmt.Errorf("%w: public key of low order", ErrBadKey)
	}
	return p, nil
}

// keyFileHeader starts every private key file WritePrivateKey writes.
const keyFileHeader = "# rolefsm node private key (X25519): keep it to this node, mode 0600\n"

// ParsePrivateKey reads a private key file's contents: one base64 line;
// blank lines and lines starting with # are skipped.
func ParsePrivateKey(data []byte) (PrivateKey, error) {
	var k PrivateKey
	found := false
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if found {
			return PrivateKey{}, fmt.Errorf("%w: line %d: a key file holds one key", ErrBadKey, i+1)
		}
		b, err := base64.StdEncoding.DecodeString(line)
		switch {
		case err != nil:
			return PrivateKey{}, fmt.Errorf("%w: line %d: not base64", ErrBadKey, i+1)
		case len(b) != len(k):
			return PrivateKey{}, fmt.Errorf("%w: line %d: %d bytes, want %d", ErrBadKey, i+1, len(b), len(k))
		}
		copy(k[:], b)
		found = true
	}
	if !found {
		return PrivateKey{}, fmt.Errorf("%w: the key file holds no key", ErrBadKey)
	}
	return k, nil
}

// LoadPrivateKey reads a private key file, refusing one that its group
// or others may read or write (ErrKeyFileMode).
func LoadPrivateKey(path string) (PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return PrivateKey{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return PrivateKey{}, err
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return PrivateKey{}, fmt.Errorf("%w: %s has mode %04o: chmod 600 %s", ErrKeyFileMode, path, m, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return ParsePrivateKey(data)
}

// WritePrivateKey writes k to a new file at path, mode 0600; an
// existing file is not overwritten (fs.ErrExist).
func WritePrivateKey(path string, k PrivateKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(keyFileHeader + k.String() + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}
