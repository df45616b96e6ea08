package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"unicode/utf8"
)

const pemTypePrivateKey = "PRIVATE KEY"

// DeviceKey is a device's Ed25519 private key. It is created on the device and
// never leaves it except through MarshalPEM into the secret store.
//
// A DeviceKey is incomparable, and formatting or logging it (any fmt verb,
// slog) shows only the short device ID, never key material. Its zero value
// is not usable; use [GenerateDeviceKey] or [ParseDeviceKeyPEM].
type DeviceKey struct {
	_ [0]func() // incomparable
	// s is behind a pointer so that even a copied DeviceKey value printed
	// with fmt shows an address, not key bytes.
	s *secretKey
}

// secretKey holds an Ed25519 private key and what is derived from it.
type secretKey struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   DeviceID
}

func newSecretKey(priv ed25519.PrivateKey) *secretKey {
	pub := priv.Public().(ed25519.PublicKey)
	return &secretKey{priv: priv, pub: pub, id: DeviceIDFromPublicKey(pub)}
}

// GenerateDeviceKey creates a new device key with entropy from rand, or from
// crypto/rand if rand is nil.
func GenerateDeviceKey(rand io.Reader) (*DeviceKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generating device key: %w", err)
	}
	return &DeviceKey{s: newSecretKey(priv)}, nil
}

// ParseDeviceKeyPEM parses a device key from a single unencrypted PKCS#8
// "PRIVATE KEY" PEM block holding an Ed25519 key, as MarshalPEM writes it.
// Errors wrap [ErrInvalidKey].
func ParseDeviceKeyPEM(b []byte) (*DeviceKey, error) {
	priv, err := parseEd25519KeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("parsing device key: %w", err)
	}
	return &DeviceKey{s: newSecretKey(priv)}, nil
}

// MarshalPEM encodes the key as a PKCS#8 "PRIVATE KEY" PEM block. The result
// is secret: it belongs in the secret store only.
func (k *DeviceKey) MarshalPEM() ([]byte, error) {
	b, err := marshalEd25519KeyPEM(k.s.priv)
	if err != nil {
		return nil, fmt.Errorf("encoding device key: %w", err)
	}
	return b, nil
}

// Public returns the device's public key.
func (k *DeviceKey) Public() ed25519.PublicKey {
	return bytes.Clone(k.s.pub)
}

// ID returns the DeviceID derived from the public key.
func (k *DeviceKey) ID() DeviceID { return k.s.id }

// Signer returns a crypto.Signer for TLS client certificates and CSRs. It
// does not expose the private key: a type assertion to ed25519.PrivateKey
// fails.
func (k *DeviceKey) Signer() crypto.Signer { return signer{k.s} }

// Sign returns a plain (pure) Ed25519 signature of msg.
//
// The same key authenticates TLS, whose signatures are over a transcript
// prefixed with 64 spaces and a context string, and signs CSRs, which are
// DER SEQUENCEs. A message to sign here must not be able to take either of
// those shapes: start it with a fixed protocol label of your own, or use
// [DeviceKey.SignWithContext], which cannot collide with pure Ed25519.
func (k *DeviceKey) Sign(msg []byte) []byte {
	return ed25519.Sign(k.s.priv, msg)
}

// SignWithContext signs msg with Ed25519ctx (RFC 8032) under context, a label
// of at most 255 bytes naming the purpose (for example
// "palyra renewal challenge v1"). Such signatures never verify as plain
// Ed25519 or under another context. Check them with [VerifyWithContext].
func (k *DeviceKey) SignWithContext(context string, msg []byte) ([]byte, error) {
	if context == "" {
		return nil, errors.New("signing with context: context is empty")
	}
	sig, err := k.s.priv.Sign(nil, msg, &ed25519.Options{Context: context})
	if err != nil {
		return nil, fmt.Errorf("signing with context: %w", err)
	}
	return sig, nil
}

// VerifyWithContext checks a signature made by [DeviceKey.SignWithContext]
// with the same context.
func VerifyWithContext(pub ed25519.PublicKey, context string, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verifying signature: %w: public key has %d bytes, want %d", ErrInvalidKey, len(pub), ed25519.PublicKeySize)
	}
	if context == "" {
		return errors.New("verifying signature: context is empty")
	}
	if err := ed25519.VerifyWithOptions(pub, msg, sig, &ed25519.Options{Context: context}); err != nil {
		return fmt.Errorf("verifying signature: %w", err)
	}
	return nil
}

// CreateCSR returns a DER certificate signing request signed by the key. name
// (for example the host name) goes into the request's subject for people
// reading it; the CA ignores it and names the certificate after the key. An
// empty name uses the device ID. rand may be nil.
func (k *DeviceKey) CreateCSR(rand io.Reader, name string) ([]byte, error) {
	if name == "" {
		name = k.s.id.String()
	}
	if !utf8.ValidString(name) {
		return nil, errors.New("creating certificate request: name is not valid UTF-8")
	}
	if rand == nil {
		rand = cryptoRand
	}
	tmpl := &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: name},
		SignatureAlgorithm: x509.PureEd25519,
	}
	der, err := x509.CreateCertificateRequest(rand, tmpl, k.Signer())
	if err != nil {
		return nil, fmt.Errorf("creating certificate request: %w", err)
	}
	return der, nil
}

// String returns "DeviceKey(<short ID>…, private)" and never key material.
//
// String, Format and LogValue have value receivers so that a DeviceKey value
// is as safe to print as a pointer to one.
func (k DeviceKey) String() string {
	if k.s == nil {
		return "DeviceKey(none)"
	}
	return "DeviceKey(" + k.s.id.Short() + "…, private)"
}

// Format prints String for every verb, so that %x, %d or %#v cannot dump
// the key either.
func (k DeviceKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue logs String.
func (k DeviceKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// signer is the crypto.Signer handed out by DeviceKey.Signer.
type signer struct{ s *secretKey }

func (s signer) Public() crypto.PublicKey { return ed25519.PublicKey(bytes.Clone(s.s.pub)) }

func (s signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.s.priv.Sign(rand, digest, opts)
}

func (s signer) String() string { return "DeviceKey(" + s.s.id.Short() + "…, signer)" }

// Format prints String for every verb.
func (s signer) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

var cryptoRand = rand.Reader

func parseEd25519KeyPEM(b []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrInvalidKey)
	}
	if block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("%w: PEM block is %q, want %q", ErrInvalidKey, block.Type, pemTypePrivateKey)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: PEM block has headers (encrypted keys are not supported)", ErrInvalidKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: unexpected data after the PEM block", ErrInvalidKey)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: the key is %s, want Ed25519", ErrInvalidKey, keyTypeName(key))
	}
	return priv, nil
}

func marshalEd25519KeyPEM(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der}), nil
}

// keyTypeName names a public or private key's algorithm for error messages.
func keyTypeName(k any) string {
	switch k := k.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return "ECDSA"
		}
		return "ECDSA " + k.Curve.Params().Name
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve == nil {
			return "ECDSA"
		}
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey, *rsa.PrivateKey:
		return "RSA"
	case *ecdh.PublicKey, *ecdh.PrivateKey:
		return "ECDH"
	case nil:
		return "missing"
	default:
		return fmt.Sprintf("%T", k)
	}
}

// smallOrderEd25519 lists the encodings, with the sign bit cleared, of the
// points of small order on edwards25519, including non-canonical ones (y ≥ p)
// that decoders reduce. A signature under such a key can verify without any
// private key, so such a key cannot identify a device.
var smallOrderEd25519 = [...][32]byte{
	// y = 0: order 4
	{},
	// y = 1: the identity, order 1
	{0x01},
	// order 8
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	// order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	// y = p-1: order 2
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	// y = p (non-canonical 0): order 4
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	// y = p+1 (non-canonical 1): order 1
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// checkDeviceEd25519Key reports whether pub can be a device key: the right
// size and not a point of small order.
func checkDeviceEd25519Key(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: Ed25519 public key has %d bytes, want %d", ErrInvalidKey, len(pub), ed25519.PublicKeySize)
	}
	var y [32]byte
	copy(y[:], pub)
	y[31] &= 0x7f
	for _, bad := range smallOrderEd25519 {
		if y == bad {
			return fmt.Errorf("%w: Ed25519 public key is a point of small order", ErrInvalidKey)
		}
	}
	return nil
}
