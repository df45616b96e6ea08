package identity

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// Fingerprint is the SHA-256 of a certificate or of a public key's
// SubjectPublicKeyInfo, both DER.
type Fingerprint [sha256.Size]byte

// CertificateFingerprint returns the SHA-256 of a DER certificate.
func CertificateFingerprint(der []byte) Fingerprint { return sha256.Sum256(der) }

// PublicKeyFingerprint returns the SHA-256 of pub's DER SubjectPublicKeyInfo.
func PublicKeyFingerprint(pub crypto.PublicKey) (Fingerprint, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Fingerprint{}, fmt.Errorf("fingerprinting public key: %w: %w", ErrInvalidKey, err)
	}
	return sha256.Sum256(der), nil
}

// String returns "sha256:" followed by lowercase hex.
func (f Fingerprint) String() string { return "sha256:" + hex.EncodeToString(f[:]) }

// Base64URL returns the fingerprint in unpadded URL-safe base64 (43
// characters), the form pairing links carry as the CA pin.
func (f Fingerprint) Base64URL() string { return base64.RawURLEncoding.EncodeToString(f[:]) }

// ParseFingerprintBase64URL parses the form Base64URL returns. It accepts
// exactly that: 43 characters, no padding, canonical. Errors wrap
// [ErrInvalidFingerprint].
func ParseFingerprintBase64URL(s string) (Fingerprint, error) {
	enc := base64.RawURLEncoding.Strict()
	if len(s) != enc.EncodedLen(sha256.Size) {
		return Fingerprint{}, fmt.Errorf("%w: a SHA-256 fingerprint has %d base64url characters, got %d",
			ErrInvalidFingerprint, enc.EncodedLen(sha256.Size), len(s))
	}
	var f Fingerprint
	n, err := enc.Decode(f[:], []byte(s))
	if err != nil || n != len(f) {
		return Fingerprint{}, fmt.Errorf("%w: not unpadded base64url: %w", ErrInvalidFingerprint, err)
	}
	return f, nil
}

// Equal compares in constant time.
func (f Fingerprint) Equal(o Fingerprint) bool { return subtle.ConstantTimeCompare(f[:], o[:]) == 1 }

// IsZero reports whether f is the zero Fingerprint (no fingerprint).
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }
