package pairing

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/cpace"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// DeviceConfig is what the device brings to a pairing run.
type DeviceConfig struct {
	Rand     io.Reader
	Key      *identity.DeviceKey
	Name     string
	Platform string
	// ServerChain is the gateway's TLS certificate chain as the device saw
	// it on the pairing connection, leaf first.
	ServerChain [][]byte
}

type deviceState int

const (
	deviceHelloSent deviceState = iota + 1
	deviceFinishSent
	deviceDone
)

// DeviceSession is the device's side of one pairing run: Hello, then
// HandleServerHello, then HandleServerFinish once the gateway approved.
type DeviceSession struct {
	cfg   DeviceConfig
	cred  secret
	pin   *identity.Fingerprint // CA pinned by a link; nil for a PIN
	party *cpace.Party
	hello []byte
	keys  sessionKeys
	state deviceState
}

// StartDevice begins a pairing run and returns the first message to send.
func StartDevice(cfg DeviceConfig, cred Credential) (*DeviceSession, []byte, error) {
	if cfg.Key == nil || cfg.Rand == nil {
		return nil, nil, errors.New("starting pairing: device key and random source are required")
	}
	if len(cfg.ServerChain) == 0 {
		return nil, nil, errors.New("starting pairing: the gateway's TLS certificate is required")
	}
	if err := checkName("device name", cfg.Name, MaxNameLength); err != nil {
		return nil, nil, fmt.Errorf("starting pairing: %w", err)
	}
	if err := checkName("platform", cfg.Platform, maxPlatformLen); err != nil {
		return nil, nil, fmt.Errorf("starting pairing: %w", err)
	}
	s := &DeviceSession{cfg: cfg, cred: cred.secret()}
	if l, ok := cred.(*Link); ok {
		pin := l.CAPin
		s.pin = &pin
	}
	sid := make([]byte, sessionIDSize)
	if _, err := io.ReadFull(cfg.Rand, sid); err != nil {
		return nil, nil, fmt.Errorf("starting pairing: %w", err)
	}
	tlsFP := identity.CertificateFingerprint(cfg.ServerChain[0])
	party, err := cpace.New(cpace.Initiator, cfg.Rand, passwordFor(s.cred.kind, s.cred.value),
		channelID(s.cred.selector, tlsFP), sid, adDevice)
	if err != nil {
		return nil, nil, fmt.Errorf("starting pairing: %w", err)
	}
	s.party = party
	s.hello, err = proto.Marshal(&pairingv1.ClientHello{
		Version:    ProtocolVersion,
		Selector:   s.cred.selector,
		SecretKind: pairingv1.SecretKind(s.cred.kind),
		SessionId:  sid,
		Share:      party.Share(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("starting pairing: %w", err)
	}
	s.state = deviceHelloSent
	return s, s.hello, nil
}

// HandleServerHello checks the gateway's key confirmation and returns the
// device's confirmation with its sealed enrollment (key, name, CSR).
func (s *DeviceSession) HandleServerHello(b []byte) ([]byte, error) {
	if s.state != deviceHelloSent {
		return nil, ErrOutOfOrder
	}
	s.state = deviceDone // any failure ends the run
	var m pairingv1.ServerHello
	if err := unmarshal("server hello", b, &m); err != nil {
		return nil, err
	}
	if len(m.Share) != cpace.ShareSize || len(m.Confirmation) != sha256.Size {
		return nil, fmt.Errorf("%w: server hello has wrong field sizes", ErrMalformed)
	}
	isk, err := s.party.Finish(m.Share, adGateway)
	if err != nil {
		// An invalid share is indistinguishable from tampering.
		return nil, fmt.Errorf("%w (%w)", ErrConfirmationFailed, err)
	}
	keys, err := deriveKeys(isk)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(m.Confirmation, mac(keys.confirmGateway, s.hello, m.Share)) {
		return nil, ErrConfirmationFailed
	}
	s.keys = keys
	csr, err := s.cfg.Key.CreateCSR(s.cfg.Rand, s.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("creating certificate request: %w", err)
	}
	enrollment, err := proto.Marshal(&pairingv1.Enrollment{
		PublicKey: s.cfg.Key.Public(),
		Name:      s.cfg.Name,
		Platform:  s.cfg.Platform,
		Csr:       csr,
	})
	if err != nil {
		return nil, err
	}
	sealed, err := seal(s.keys.enrollment, "enrollment", enrollment)
	if err != nil {
		return nil, err
	}
	out, err := proto.Marshal(&pairingv1.ClientFinish{
		Confirmation:     mac(s.keys.confirmDevice, s.hello, m.Share, m.Confirmation),
		SealedEnrollment: sealed,
	})
	if err != nil {
		return nil, err
	}
	s.state = deviceFinishSent
	return out, nil
}

// VerificationCode is the short code both sides show, so the person approving
// can tell this device's request from any other; empty before the gateway's
// confirmation has been checked.
func (s *DeviceSession) VerificationCode() string { return s.keys.verification }

// Result is what a successful pairing gives the device.
type Result struct {
	DeviceID          identity.DeviceID
	DeviceCertificate *x509.Certificate
	CACertificate     *x509.Certificate
	Addresses         []string
	GatewayName       string
}

// HandleServerFinish opens the gateway's grant and verifies it: the CA matches
// the link's pin (if paired by link), the TLS certificate the device saw was
// issued by that CA, and the device certificate names this device's key.
func (s *DeviceSession) HandleServerFinish(b []byte, now time.Time) (*Result, error) {
	if s.state != deviceFinishSent {
		return nil, ErrOutOfOrder
	}
	s.state = deviceDone
	var m pairingv1.ServerFinish
	if err := unmarshal("server finish", b, &m); err != nil {
		return nil, err
	}
	plain, err := open(s.keys.grant.k[:], "grant", m.SealedGrant)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open under the pairing key", ErrInvalidGrant)
	}
	var g pairingv1.Grant
	if err := unmarshal("grant", plain, &g); err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(g.CaCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: the CA certificate does not parse", ErrInvalidGrant)
	}
	if s.pin != nil && !identity.CertificateFingerprint(g.CaCertificate).Equal(*s.pin) {
		return nil, ErrCAMismatch
	}
	if err := identity.VerifyServerCertificate(caCert, s.cfg.ServerChain, "", now); err != nil {
		return nil, fmt.Errorf("%w: the gateway's TLS certificate is not from its CA: %w", ErrInvalidGrant, err)
	}
	id, err := identity.VerifyDeviceCertificate(caCert, [][]byte{g.DeviceCertificate}, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGrant, err)
	}
	if id != s.cfg.Key.ID() {
		return nil, fmt.Errorf("%w: the certificate is for device %s, not this one", ErrInvalidGrant, id)
	}
	if len(g.Addresses) == 0 || len(g.Addresses) > MaxLinkGateways {
		return nil, fmt.Errorf("%w: it has %d gateway addresses", ErrInvalidGrant, len(g.Addresses))
	}
	for _, a := range g.Addresses {
		if err := CheckAddress(a); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidGrant, err)
		}
	}
	if err := checkName("gateway name", g.GatewayName, MaxNameLength); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGrant, err)
	}
	devCert, err := x509.ParseCertificate(g.DeviceCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: the device certificate does not parse", ErrInvalidGrant)
	}
	return &Result{
		DeviceID:          id,
		DeviceCertificate: devCert,
		CACertificate:     caCert,
		Addresses:         g.Addresses,
		GatewayName:       g.GatewayName,
	}, nil
}

// Resumable is what a device keeps of a run whose request waits for
// approval, so that a later run (ResumeDevice) can open the gateway's
// grant. GrantKey is secret; the rest is not.
type Resumable struct {
	GrantKey GrantKey
	// ServerChain is the gateway's TLS chain the exchange was bound to.
	ServerChain [][]byte
	// CAPin is the CA a link pinned; nil for a PIN.
	CAPin *identity.Fingerprint
}

// Resumable returns what a later run needs to finish this one; it is
// valid once HandleServerHello succeeded.
func (s *DeviceSession) Resumable() (Resumable, error) {
	if s.state != deviceFinishSent {
		return Resumable{}, ErrOutOfOrder
	}
	return Resumable{GrantKey: s.keys.grant, ServerChain: s.cfg.ServerChain, CAPin: s.pin}, nil
}

// ResumeDevice restores a run that waits for the gateway's grant, from what
// Resumable returned, so HandleServerFinish can open and verify the grant.
func ResumeDevice(key *identity.DeviceKey, r Resumable) (*DeviceSession, error) {
	if key == nil || len(r.ServerChain) == 0 {
		return nil, errors.New("resuming pairing: the device key and the gateway's TLS chain are required")
	}
	return &DeviceSession{
		cfg:   DeviceConfig{Key: key, ServerChain: r.ServerChain},
		pin:   r.CAPin,
		keys:  sessionKeys{grant: r.GrantKey},
		state: deviceFinishSent,
	}, nil
}
