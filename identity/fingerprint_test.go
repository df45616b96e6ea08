package identity_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/identity"
)

func TestFingerprint(t *testing.T) {
	t.Parallel()
	f := identity.CertificateFingerprint([]byte("abc"))
	// SHA-256("abc") from FIPS 180-2.
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := f.String(); got != "sha256:"+abc {
		t.Errorf("String() = %s", got)
	}
	if got := f.Base64URL(); got != "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0" {
		t.Errorf("Base64URL() = %s", got)
	}
	back, err := identity.ParseFingerprintBase64URL(f.Base64URL())
	if err != nil || back != f {
		t.Fatalf("ParseFingerprintBase64URL(%s) = %v, %v", f.Base64URL(), back, err)
	}
	if !f.Equal(back) || f.Equal(identity.CertificateFingerprint([]byte("abd"))) {
		t.Error("Equal is wrong")
	}
	if f.IsZero() || !(identity.Fingerprint{}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestParseFingerprintBase64URLRejects(t *testing.T) {
	t.Parallel()
	good := identity.CertificateFingerprint([]byte("x")).Base64URL()
	// The last character carries 4 unused bits; flipping one makes a
	// non-canonical encoding of the same bytes.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, good[42])
	nonCanonical := good[:42] + string(alphabet[last^1])
	tests := []struct{ name, in, want string }{
		{"empty", "", "has 43 base64url characters, got 0"},
		{"padded", good + "=", "got 44"},
		{"hex", strings.Repeat("ab", 32), "got 64"},
		{"standard alphabet", "+" + good[1:], "not unpadded base64url"},
		{"slash", good[:10] + "/" + good[11:], "not unpadded base64url"},
		{"space", good[:10] + " " + good[11:], "not unpadded base64url"},
		{"non-canonical", nonCanonical, "not unpadded base64url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := identity.ParseFingerprintBase64URL(tt.in)
			if !errors.Is(err, identity.ErrInvalidFingerprint) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseFingerprintBase64URL(%q) = %v, want ErrInvalidFingerprint saying %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestPublicKeyFingerprint(t *testing.T) {
	t.Parallel()
	k := newTestDeviceKey(t)
	got, err := identity.PublicKeyFingerprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if got != sha256.Sum256(spki) {
		t.Error("PublicKeyFingerprint is not the SHA-256 of the SPKI")
	}
	// The certificate carries the same SPKI.
	cert := issueDevice(t, newTestCA(t, "test"), k)
	if got != sha256.Sum256(cert.RawSubjectPublicKeyInfo) {
		t.Error("PublicKeyFingerprint differs from the certificate's SPKI hash")
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.PublicKeyFingerprint(struct{}{}); !errors.Is(err, identity.ErrInvalidKey) {
		t.Errorf("PublicKeyFingerprint(struct{}{}) = %v, want ErrInvalidKey", err)
	}
	if _, err := identity.PublicKeyFingerprint(x.PublicKey()); err != nil {
		t.Errorf("PublicKeyFingerprint(X25519) = %v", err)
	}
}
