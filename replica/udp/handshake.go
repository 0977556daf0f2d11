package udp

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"github.com/flynn/noise"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/curve25519"
)

// suite is Noise_IK_25519_ChaChaPoly_BLAKE2s: WireGuard's primitives,
// without its pre-shared key.
var suite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// prologue binds every handshake to this protocol and version.
var prologue = []byte("rolefsm replica/udp 2")

// macKey is the key of mac1 on messages to the holder of pub: anyone
// who knows pub can compute it, so it proves no identity; it lets the
// receiver refuse, for the price of a keyed hash and before any
// Diffie-Hellman, whatever was not made for its key.
func macKey(pub PublicKey) [32]byte {
	return blake2s.Sum256(append([]byte("mac1----"), pub[:]...))
}

// mac1 is the keyed BLAKE2s-128 of msg.
func mac1(key *[32]byte, msg []byte) [16]byte {
	h, err := blake2s.New128(key[:])
	if err != nil {
		panic("udp: blake2s.New128 with a 32-byte key: " + err.Error()) // cannot happen
	}
	h.Write(msg)
	var m [16]byte
	h.Sum(m[:0])
	return m
}

// macOK reports whether msg ends with a valid mac1 under key.
func macOK(key *[32]byte, msg []byte) bool {
	if len(msg) < 16 {
		return false
	}
	m := mac1(key, msg[:len(msg)-16])
	return subtle.ConstantTimeCompare(m[:], msg[len(msg)-16:]) == 1
}

func appendPrefix(p []byte, typ byte) []byte { return append(p, 'r', 'f', Version, typ) }

// newHandshake starts a Noise IK handshake.
func newHandshake(static noise.DHKey, initiator bool, peer []byte) (*noise.HandshakeState, error) {
	return noise.NewHandshakeState(noise.Config{CipherSuite: suite, Pattern: noise.HandshakeIK, Initiator: initiator,
		Prologue: prologue, StaticKeypair: static, PeerStatic: peer})
}

var errHandshake = errors.New("udp: handshake failed")

// initiation writes the first message of a handshake with the holder
// of peer: the state to read the response with, and the datagram.
func initiation(static noise.DHKey, peer PublicKey, index uint32, boot uint64) (*noise.HandshakeState, []byte, error) {
	hs, err := newHandshake(static, true, peer[:])
	if err != nil {
		return nil, nil, err
	}
	msg := appendPrefix(make([]byte, 0, InitiationSize), typeInitiation)
	msg = binary.BigEndian.AppendUint32(msg, index)
	msg, _, _, err = hs.WriteMessage(msg, binary.BigEndian.AppendUint64(nil, boot))
	if err != nil {
		return nil, nil, err
	}
	key := macKey(peer)
	m := mac1(&key, msg)
	msg = append(msg, m[:]...)
	if len(msg) != InitiationSize {
		return nil, nil, errHandshake
	}
	return hs, msg, nil
}

// answered is what a responder learns from an initiation and answers.
type answered struct {
	peerStatic PublicKey
	boot       uint64 // the initiator's
	index      uint32 // the initiator's
	send, recv *noise.CipherState
	response   []byte // to send, once the responder's index is written in
}

// answer reads an initiation (its mac1 already checked) and writes the
// response under the responder's index.
func answer(static noise.DHKey, msg []byte, index uint32, boot uint64) (answered, error) {
	var a answered
	hs, err := newHandshake(static, false, nil)
	if err != nil {
		return a, err
	}
	payload, _, _, err := hs.ReadMessage(nil, msg[8:InitiationSize-16])
	if err != nil || len(payload) != 8 {
		return a, errHandshake
	}
	copy(a.peerStatic[:], hs.PeerStatic())
	a.boot = binary.BigEndian.Uint64(payload)
	a.index = binary.BigEndian.Uint32(msg[4:])
	resp := appendPrefix(make([]byte, 0, ResponseSize), typeResponse)
	resp = binary.BigEndian.AppendUint32(resp, index)
	resp = binary.BigEndian.AppendUint32(resp, a.index)
	var i2r, r2i *noise.CipherState
	resp, i2r, r2i, err = hs.WriteMessage(resp, binary.BigEndian.AppendUint64(nil, boot))
	if err != nil || i2r == nil {
		return a, errHandshake
	}
	key := macKey(a.peerStatic)
	m := mac1(&key, resp)
	resp = append(resp, m[:]...)
	a.response = resp
	a.send, a.recv = r2i, i2r
	return a, nil
}

// complete reads a response (its mac1 already checked) with the
// initiator's state: the responder's boot and index, and the session's
// cipher states.
func complete(hs *noise.HandshakeState, msg []byte) (boot uint64, index uint32, send, recv *noise.CipherState, err error) {
	// flynn/noise mixes the ephemeral into the hash before the ee DH,
	// and does not roll back when that DH fails: refuse a low-order one
	// first, or the pending handshake is spoiled for the real response.
	var probe [32]byte
	probe[0] = 8
	if _, err := curve25519.X25519(probe[:], msg[12:44]); err != nil {
		return 0, 0, nil, nil, errHandshake
	}
	payload, i2r, r2i, err := hs.ReadMessage(nil, msg[12:ResponseSize-16])
	if err != nil || len(payload) != 8 || i2r == nil {
		return 0, 0, nil, nil, errHandshake
	}
	return binary.BigEndian.Uint64(payload), binary.BigEndian.Uint32(msg[4:]), i2r, r2i, nil
}
