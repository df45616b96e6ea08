package pairing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/cpace"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// Protocol constants. Changing any of them changes every derived key, so they
// are versioned together with ProtocolVersion.
const (
	ProtocolVersion = 1
	protocolLabel   = "palyra-pair/1"
	sessionIDSize   = 16
	// MaxMessageSize bounds every pairing message before it is decoded.
	MaxMessageSize = 16 << 10
	maxCSRSize     = 4 << 10
	maxPlatformLen = 32
)

var (
	adDevice  = []byte("palyra device")
	adGateway = []byte("palyra gateway")
)

var (
	// ErrMalformed is wrapped by every error about a message that does not
	// decode or breaks a limit.
	ErrMalformed = errors.New("malformed pairing message")
	// ErrConfirmationFailed means the two sides did not derive the same key:
	// the code was wrong or expired, or someone sits in the middle of the
	// connection. The two cannot be told apart, by design.
	ErrConfirmationFailed = errors.New("incorrect or expired code, or the connection to the gateway is being intercepted")
	// ErrOutOfOrder is returned when a session is used in the wrong order or
	// after it ended.
	ErrOutOfOrder = errors.New("pairing message out of order")
	// ErrCAMismatch means the gateway's CA is not the one the link pinned.
	ErrCAMismatch = errors.New("the gateway's certificate authority does not match the pairing link")
	// ErrInvalidGrant means the gateway's answer did not hold up: a certificate
	// for another key, a chain that does not verify, bad addresses.
	ErrInvalidGrant = errors.New("the gateway's pairing answer is invalid")
	// ErrInvalidEnrollment means the device's request did not hold up.
	ErrInvalidEnrollment = errors.New("the device's pairing request is invalid")
)

// Outcomes the gateway reports to a device, with the same words on both sides
// so a device can tell them apart.
var (
	// ErrWrongCode is the gateway's answer to a key confirmation that
	// failed, and to a code another run used meanwhile. A device that
	// checks the gateway's confirmation first (as DeviceSession does)
	// stops with ErrConfirmationFailed before it sees this: for a wrong
	// secret and, since the gateway answers them with a decoy
	// (RespondDecoy), for an unknown, expired, used or closed code alike,
	// so a guesser learns nothing about which codes exist.
	ErrWrongCode      = errors.New("incorrect or expired code")
	ErrRejected       = errors.New("the pairing request was rejected")
	ErrRequestExpired = errors.New("the pairing request expired before anyone approved it")
	ErrDeviceRevoked  = errors.New("this device has been revoked by the gateway; pairing it again is not allowed")
	// ErrRequestUnknown answers a device that resumes a request the gateway
	// does not hold for it (removed, or never this device's).
	ErrRequestUnknown = errors.New("the gateway has no such pairing request from this device")
	// ErrRequestCollected answers a device that resumes a request whose
	// certificate was already delivered.
	ErrRequestCollected = errors.New("the certificate of this pairing request was already delivered")
)

// Credential is what a person gives the device to pair: a PIN or a link.
type Credential interface {
	secret() secret
}

type secretKind int

const (
	kindPIN  secretKind = secretKind(pairingv1.SecretKind_SECRET_KIND_PIN)
	kindLink secretKind = secretKind(pairingv1.SecretKind_SECRET_KIND_LINK)
)

type secret struct {
	selector string
	kind     secretKind
	value    []byte
}

// passwordFor binds the kind of secret into the CPace password, so a PIN can
// never be mistaken for a link secret or the other way round.
func passwordFor(kind secretKind, value []byte) []byte {
	label := "pin"
	if kind == kindLink {
		label = "link"
	}
	return cpace.LVCat([]byte(label), value)
}

// channelID binds the run to the code and to the gateway's TLS certificate as
// this side knows it: a man in the middle presents another certificate, so the
// two sides compute different generators and key confirmation fails.
func channelID(selector string, tlsCert identity.Fingerprint) []byte {
	return cpace.LVCat([]byte(protocolLabel), []byte(selector), tlsCert[:])
}

// sessionKeys are derived from CPace's ISK, one per purpose.
type sessionKeys struct {
	confirmGateway []byte
	confirmDevice  []byte
	enrollment     []byte
	grant          GrantKey
	verification   string
}

func deriveKeys(isk []byte) (sessionKeys, error) {
	derive := func(purpose string, n int) ([]byte, error) {
		return hkdf.Key(sha512.New, isk, nil, protocolLabel+" "+purpose, n)
	}
	var k sessionKeys
	var err error
	if k.confirmGateway, err = derive("confirm gateway", 32); err != nil {
		return k, err
	}
	if k.confirmDevice, err = derive("confirm device", 32); err != nil {
		return k, err
	}
	if k.enrollment, err = derive("seal enrollment", 32); err != nil {
		return k, err
	}
	g, err := derive("seal grant", 32)
	if err != nil {
		return k, err
	}
	copy(k.grant.k[:], g)
	v, err := derive("verification code", 8)
	if err != nil {
		return k, err
	}
	n := binary.BigEndian.Uint64(v) % 1_000_000
	k.verification = fmt.Sprintf("%03d %03d", n/1000, n%1000)
	return k, nil
}

func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(cpace.LVCat(parts...))
	return h.Sum(nil)
}

// seal and open use AES-256-GCM with a zero nonce: every key seals exactly one
// message in one direction, so a nonce is never reused.
func seal(key []byte, label string, plaintext []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, make([]byte, aead.NonceSize()), plaintext, []byte(label)), nil
}

func open(key []byte, label string, sealed []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, make([]byte, aead.NonceSize()), sealed, []byte(label))
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// unmarshal bounds the size before decoding.
func unmarshal(what string, b []byte, m proto.Message) error {
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: %s of %d bytes is over the %d-byte limit", ErrMalformed, what, len(b), MaxMessageSize)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %s does not decode", ErrMalformed, what)
	}
	return nil
}
