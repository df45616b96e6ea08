// Package cpace implements the CPace balanced PAKE, draft-irtf-cfrg-cpace-21,
// cipher suite CPACE-RISTR255-SHA512, in initiator-responder mode, on
// github.com/gtank/ristretto255.
//
// Two parties who share a low-entropy password (PRS), a channel identifier
// (CI) and a session identifier (sid) each create a Party, exchange their
// public shares together with associated data (AD), and call Finish with the
// peer's share. Both obtain the same 64-byte intermediate session key (ISK)
// only if they used the same PRS, CI and sid and saw the same shares and AD.
// An attacker who talks to one party learns at most whether one guessed
// password was right; a passive observer learns nothing about the password.
//
// The package is the cryptographic core of pairing (package identity/pairing)
// and nothing more. It does no networking and no key confirmation: an ISK must
// not be trusted until both sides have proved they hold it (for example with
// MACs compared in constant time), and only keys derived from it should be
// used. It keeps no state beyond one run, never retains the password, and a
// Party is single use. It must import nothing beyond the standard library and
// ristretto255 and must stay cgo-free.
//
// The helper functions (PrependLen, LVCat, LexiographicallyLarger, OCat,
// TranscriptIR, TranscriptOC, GeneratorString, Generator) follow the draft's
// definitions and names, spelling included, so they can be checked against
// its test vectors.
package cpace

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/gtank/ristretto255"
)

const (
	// DSI is the domain separation identifier of CPACE-RISTR255-SHA512.
	DSI = "CPaceRistretto255"
	// ShareSize is the length of a public share: an encoded ristretto255
	// element.
	ShareSize = 32

	// dsiISK separates the ISK derivation from the generator derivation.
	dsiISK = DSI + "_ISK"
	// sidOutputLabel prefixes the transcript for the optional session-id
	// output.
	sidOutputLabel = "CPaceSidOutput"
	// scalarSize is the length of an encoded ristretto255 scalar.
	scalarSize = 32
)

var (
	// ErrInvalidShare means the peer's share is not a canonical ristretto255
	// encoding, has the wrong length, or encodes the identity element.
	ErrInvalidShare = errors.New("cpace: invalid peer share")
	// ErrIdentity means the shared point K is the identity element; the run
	// must be aborted.
	ErrIdentity = errors.New("cpace: shared point is the identity")
	// ErrFinished means Finish was already called on this Party.
	ErrFinished = errors.New("cpace: session already finished")
)

// identityEncoding is G.I, the encoding of the identity element: 32 zero bytes.
var identityEncoding [ShareSize]byte

// isIdentity reports, in constant time, whether b is the encoding of the
// identity element.
func isIdentity(b []byte) bool {
	return subtle.ConstantTimeCompare(b, identityEncoding[:]) == 1
}

// Role says which side of an initiator-responder run a Party is. It decides
// the order of the two shares in the transcript.
type Role int

const (
	// Initiator sends its share first; its share and AD are Ya and ADa.
	Initiator Role = iota + 1
	// Responder answers; its share and AD are Yb and ADb.
	Responder
)

// Party is one side of one CPace run (initiator-responder mode). Single use:
// after the first call to Finish, successful or not, the secret scalar is
// erased and further calls fail with ErrFinished. A Party is not safe for
// concurrent use.
type Party struct {
	role  Role
	sid   []byte
	ad    []byte
	share []byte

	// y is the secret scalar; nil once Finish has been called.
	y *ristretto255.Scalar
	// sidOutput is set when Finish succeeds.
	sidOutput []byte
}

// New samples a fresh secret scalar from rand and computes the public share
// for the generator derived from prs, ci and sid. ad is the associated data
// this party sends along with its share. rand should be crypto/rand.Reader
// outside tests. The password is not retained.
//
// Scalars are sampled as 32 random bytes with the top four bits cleared, so
// they are always below the group order; a zero scalar is refused.
func New(role Role, rand io.Reader, prs, ci, sid, ad []byte) (*Party, error) {
	if rand == nil {
		return nil, errors.New("cpace: no random source")
	}
	var b [scalarSize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("cpace: sampling scalar: %w", err)
	}
	b[31] &= 0x0f
	var y ristretto255.Scalar
	defer y.Zero()
	if err := y.Decode(b[:]); err != nil {
		// Unreachable: a value below 2^252 is always canonical.
		return nil, fmt.Errorf("cpace: sampling scalar: %w", err)
	}
	if y.Equal(ristretto255.NewScalar()) == 1 {
		return nil, errors.New("cpace: sampling scalar: random source returned zero")
	}
	return newWithScalar(role, &y, prs, ci, sid, ad)
}

// newWithScalar builds a Party around a given secret scalar, which it copies.
// Only New and tests call it. It deliberately accepts a zero scalar so tests
// can reach the K == G.I abort in Finish; New never passes one.
func newWithScalar(role Role, y *ristretto255.Scalar, prs, ci, sid, ad []byte) (*Party, error) {
	if role != Initiator && role != Responder {
		return nil, fmt.Errorf("cpace: invalid role %d", role)
	}
	g := Generator(prs, ci, sid)
	own := *y
	share := ristretto255.NewElement().ScalarMult(&own, g).Encode(make([]byte, 0, ShareSize))
	return &Party{
		role:  role,
		sid:   append([]byte(nil), sid...),
		ad:    append([]byte(nil), ad...),
		share: share,
		y:     &own,
	}, nil
}

// Share returns a copy of this party's public share Y (ShareSize bytes).
func (p *Party) Share() []byte {
	return append([]byte(nil), p.share...)
}

// Finish computes K = scalar_mult_vfy(y, peerShare) and from it the ISK,
// SHA-512(lv_cat(DSI_ISK, sid, K) || transcript_ir), where the initiator's
// share and AD always come first in transcript_ir. It fails with
// ErrInvalidShare if peerShare is not a canonical encoding of a non-identity
// element and with ErrIdentity if K is the identity.
//
// The secret scalar is erased before Finish returns, whatever the outcome; a
// second call returns ErrFinished. The ISK must be confirmed by both sides
// before it is trusted.
func (p *Party) Finish(peerShare, peerAD []byte) (isk []byte, err error) {
	if p.y == nil {
		return nil, ErrFinished
	}
	y := p.y
	p.y = nil
	defer y.Zero()

	// gtank's Decode accepts the identity encoding; reject it up front. The
	// K == G.I check in multVfy would catch it as well. multVfy checks the
	// length and the canonical encoding.
	if isIdentity(peerShare) {
		return nil, fmt.Errorf("%w: identity element", ErrInvalidShare)
	}
	k, err := multVfy(y, peerShare)
	if err != nil {
		return nil, err
	}
	defer clear(k)

	var transcript []byte
	if p.role == Initiator {
		transcript = TranscriptIR(p.share, p.ad, peerShare, peerAD)
	} else {
		transcript = TranscriptIR(peerShare, peerAD, p.share, p.ad)
	}
	input := iskHashInput(p.sid, k, transcript)
	defer clear(input)
	sum := sha512.Sum512(input)
	p.sidOutput = sidOutput(transcript)
	return sum[:], nil
}

// SidOutput returns SHA-512("CPaceSidOutput" || transcript_ir) once Finish
// has succeeded, and nil before that or after a failed Finish. The draft
// offers it as a session identifier for runs that had no sid of their own.
func (p *Party) SidOutput() []byte {
	if p.sidOutput == nil {
		return nil
	}
	return append([]byte(nil), p.sidOutput...)
}

// Generator derives the CPace generator g for CPACE-RISTR255-SHA512:
// SHA-512(generator_string(DSI, prs, ci, sid, 128)) mapped to the group with
// the RFC 9496 one-way map (not RFC 9380 hash_to_curve).
func Generator(prs, ci, sid []byte) *ristretto255.Element {
	s := GeneratorString([]byte(DSI), prs, ci, sid, sha512.BlockSize)
	defer clear(s) // it contains the password
	h := sha512.Sum512(s)
	defer clear(h[:])
	return ristretto255.NewElement().FromUniformBytes(h[:])
}

// multVfy is scalar_mult_vfy on a decoded scalar: it decodes the peer's share
// canonically, multiplies, and refuses an identity result. On failure it
// returns G.I together with the error.
func multVfy(y *ristretto255.Scalar, peer []byte) ([]byte, error) {
	gi := identityEncoding[:]
	if len(peer) != ShareSize {
		return append([]byte(nil), gi...), fmt.Errorf("%w: %d bytes, want %d", ErrInvalidShare, len(peer), ShareSize)
	}
	e := ristretto255.NewElement()
	if err := e.Decode(peer); err != nil {
		return append([]byte(nil), gi...), fmt.Errorf("%w: not a canonical encoding", ErrInvalidShare)
	}
	k := ristretto255.NewElement().ScalarMult(y, e).Encode(make([]byte, 0, ShareSize))
	if isIdentity(k) {
		return k, ErrIdentity
	}
	return k, nil
}

// scalarMultVfy is the draft's scalar_mult_vfy(y, Y) on encodings (B.3.10,
// B.3.11): encode(y * decode(Y)), or G.I (32 zero bytes) when Y does not
// decode canonically or the product is the identity. A y that is not a
// canonical scalar encoding also yields G.I, so nothing can proceed on it.
func scalarMultVfy(y, Y []byte) []byte {
	var s ristretto255.Scalar
	defer s.Zero()
	if err := s.Decode(y); err != nil {
		return append([]byte(nil), identityEncoding[:]...)
	}
	k, _ := multVfy(&s, Y)
	return k
}

// iskHashInput is lv_cat(DSI_ISK, sid, K) || transcript, the input to the ISK
// hash. The transcript is appended without a length prefix.
func iskHashInput(sid, k, transcript []byte) []byte {
	parts := [][]byte{[]byte(dsiISK), sid, k}
	// Sized up front so K is never left behind in a discarded buffer.
	out := make([]byte, 0, lvCatLen(parts)+len(transcript))
	out = appendLVCat(out, parts...)
	return append(out, transcript...)
}

// sidOutput is SHA-512("CPaceSidOutput" || transcript), a plain concatenation.
func sidOutput(transcript []byte) []byte {
	h := sha512.New()
	h.Write([]byte(sidOutputLabel))
	h.Write(transcript)
	return h.Sum(nil)
}
