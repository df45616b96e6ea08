package pairing

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/cpace"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// ClientHello is a decoded, validated first message. The gateway reads the
// selector from it to find the open code, then calls RespondGateway.
type ClientHello struct {
	raw []byte
	msg *pairingv1.ClientHello
}

// ParseClientHello decodes and validates the device's first message.
func ParseClientHello(b []byte) (*ClientHello, error) {
	var m pairingv1.ClientHello
	if err := unmarshal("client hello", b, &m); err != nil {
		return nil, err
	}
	if m.Version != ProtocolVersion {
		return nil, fmt.Errorf("%w: protocol version %d, this gateway speaks %d", ErrMalformed, m.Version, ProtocolVersion)
	}
	if err := checkSelector(m.Selector); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch secretKind(m.SecretKind) {
	case kindPIN, kindLink:
	default:
		return nil, fmt.Errorf("%w: unknown secret kind %d", ErrMalformed, m.SecretKind)
	}
	if len(m.SessionId) != sessionIDSize || len(m.Share) != cpace.ShareSize {
		return nil, fmt.Errorf("%w: client hello has wrong field sizes", ErrMalformed)
	}
	return &ClientHello{raw: b, msg: &m}, nil
}

// Selector names the code the device means.
func (h *ClientHello) Selector() string { return h.msg.Selector }

// ViaLink reports whether the device claims the link secret rather than the PIN.
func (h *ClientHello) ViaLink() bool { return secretKind(h.msg.SecretKind) == kindLink }

// GatewayConfig is what the gateway brings to a pairing run.
type GatewayConfig struct {
	Rand io.Reader
	// TLSCertificate is the leaf (DER) the gateway presents on the pairing
	// connection.
	TLSCertificate []byte
}

type gatewayState int

const (
	gatewayAwaitingFinish gatewayState = iota + 1
	gatewayDone
)

// GatewaySession is the gateway's side of one pairing run. The caller must
// count every started run as a failed attempt on the code until
// HandleClientFinish succeeds: a device that never confirms has still had its
// guess.
type GatewaySession struct {
	hello     *ClientHello
	shareB    []byte
	confirmGW []byte
	keys      sessionKeys
	state     gatewayState
	// decoy is set for a run with no code behind it (RespondDecoy); it
	// never confirms.
	decoy bool
}

// RespondGateway answers a client hello for the given open code.
func RespondGateway(cfg GatewayConfig, hello *ClientHello, code *Code) (*GatewaySession, []byte, error) {
	if hello.Selector() != code.Selector {
		return nil, nil, errors.New("responding to pairing: code does not match the hello's selector")
	}
	prs, err := code.password(secretKind(hello.msg.SecretKind))
	if err != nil {
		return nil, nil, fmt.Errorf("responding to pairing: %w", err)
	}
	return respond(cfg, hello, prs)
}

// RespondDecoy answers a client hello whose selector names no open code
// (unknown, used, expired or closed) the way RespondGateway answers one
// that does, with a random secret of the kind the device claims: the same
// messages, the same CPace work, and a device that learns only at key
// confirmation, with the same ErrConfirmationFailed as for a wrong secret.
// So which codes are open does not show. The session never confirms: its
// HandleClientFinish always fails with ErrConfirmationFailed.
func RespondDecoy(cfg GatewayConfig, hello *ClientHello) (*GatewaySession, []byte, error) {
	// A link secret's size for either kind, so that not even a lucky PIN
	// can confirm against the decoy (and go on to see the gateway refuse
	// it, which a wrong PIN would not).
	secret := make([]byte, LinkSecretSize)
	if _, err := io.ReadFull(cfg.Rand, secret); err != nil {
		return nil, nil, fmt.Errorf("responding to pairing: %w", err)
	}
	s, reply, err := respond(cfg, hello, passwordFor(secretKind(hello.msg.SecretKind), secret))
	if err != nil {
		return nil, nil, err
	}
	s.decoy = true
	return s, reply, nil
}

// respond is the gateway's half of CPace for the password prs.
func respond(cfg GatewayConfig, hello *ClientHello, prs []byte) (*GatewaySession, []byte, error) {
	party, err := cpace.New(cpace.Responder, cfg.Rand, prs,
		channelID(hello.Selector(), identity.CertificateFingerprint(cfg.TLSCertificate)), hello.msg.SessionId, adGateway)
	if err != nil {
		return nil, nil, fmt.Errorf("responding to pairing: %w", err)
	}
	isk, err := party.Finish(hello.msg.Share, adDevice)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	s := &GatewaySession{hello: hello, shareB: party.Share()}
	if s.keys, err = deriveKeys(isk); err != nil {
		return nil, nil, err
	}
	s.confirmGW = mac(s.keys.confirmGateway, hello.raw, s.shareB)
	reply, err := proto.Marshal(&pairingv1.ServerHello{Share: s.shareB, Confirmation: s.confirmGW})
	if err != nil {
		return nil, nil, err
	}
	s.state = gatewayAwaitingFinish
	return s, reply, nil
}

// Request is a device's confirmed pairing request, ready for approval.
type Request struct {
	DeviceID         identity.DeviceID
	PublicKey        ed25519.PublicKey
	Name             string
	Platform         string
	CSR              []byte // DER, signature verified
	VerificationCode string
	// GrantKey seals the answer once the request is approved; keep it with
	// the pending request (it is as sensitive as the request is short-lived).
	GrantKey GrantKey
}

// HandleClientFinish checks the device's key confirmation, in constant time,
// and opens its enrollment.
func (s *GatewaySession) HandleClientFinish(b []byte) (*Request, error) {
	if s.state != gatewayAwaitingFinish {
		return nil, ErrOutOfOrder
	}
	s.state = gatewayDone
	var m pairingv1.ClientFinish
	if err := unmarshal("client finish", b, &m); err != nil {
		return nil, err
	}
	if !hmac.Equal(m.Confirmation, mac(s.keys.confirmDevice, s.hello.raw, s.shareB, s.confirmGW)) || s.decoy {
		return nil, ErrConfirmationFailed
	}
	plain, err := open(s.keys.enrollment, "enrollment", m.SealedEnrollment)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open under the pairing key", ErrInvalidEnrollment)
	}
	var e pairingv1.Enrollment
	if err := unmarshal("enrollment", plain, &e); err != nil {
		return nil, err
	}
	if len(e.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: the public key has %d bytes", ErrInvalidEnrollment, len(e.PublicKey))
	}
	if err := checkName("device name", e.Name, MaxNameLength); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEnrollment, err)
	}
	if err := checkName("platform", e.Platform, maxPlatformLen); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEnrollment, err)
	}
	if len(e.Csr) > maxCSRSize {
		return nil, fmt.Errorf("%w: the certificate request is over %d bytes", ErrInvalidEnrollment, maxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(e.Csr)
	if err != nil {
		return nil, fmt.Errorf("%w: the certificate request does not parse", ErrInvalidEnrollment)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the certificate request's signature is wrong", ErrInvalidEnrollment)
	}
	csrKey, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok || !csrKey.Equal(ed25519.PublicKey(e.PublicKey)) {
		return nil, fmt.Errorf("%w: the certificate request is for another key", ErrInvalidEnrollment)
	}
	return &Request{
		DeviceID:         identity.DeviceIDFromPublicKey(e.PublicKey),
		PublicKey:        e.PublicKey,
		Name:             e.Name,
		Platform:         e.Platform,
		CSR:              e.Csr,
		VerificationCode: s.keys.verification,
		GrantKey:         s.keys.grant,
	}, nil
}

// Grant is the gateway's answer to an approved request.
type Grant struct {
	DeviceCertificate []byte // DER
	CACertificate     []byte // DER
	Addresses         []string
	GatewayName       string
}

// GrantKey seals the grant for one request. It never appears in logs.
type GrantKey struct {
	_ [0]func()
	k [32]byte
}

// Bytes returns the key for storing with a pending request.
func (k GrantKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// GrantKeyFromBytes restores a stored grant key.
func GrantKeyFromBytes(b []byte) (GrantKey, error) {
	var k GrantKey
	if len(b) != len(k.k) {
		return k, fmt.Errorf("grant key has %d bytes, want %d", len(b), len(k.k))
	}
	copy(k.k[:], b)
	return k, nil
}

// String never shows the key.
func (GrantKey) String() string { return "GrantKey(redacted)" }

// SealGrant produces the ServerFinish message for an approved request.
func SealGrant(key GrantKey, g Grant) ([]byte, error) {
	plain, err := proto.Marshal(&pairingv1.Grant{
		DeviceCertificate: g.DeviceCertificate,
		CaCertificate:     g.CACertificate,
		Addresses:         g.Addresses,
		GatewayName:       g.GatewayName,
	})
	if err != nil {
		return nil, err
	}
	sealed, err := seal(key.k[:], "grant", plain)
	if err != nil {
		return nil, err
	}
	out, err := proto.Marshal(&pairingv1.ServerFinish{SealedGrant: sealed})
	if err != nil {
		return nil, err
	}
	if len(out) > MaxMessageSize {
		return nil, fmt.Errorf("sealing grant: %d bytes is over the %d-byte message limit", len(out), MaxMessageSize)
	}
	return out, nil
}
