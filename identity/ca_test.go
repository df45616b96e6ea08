package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

func TestNewCA(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Palyra gateway on test-host")
	c := ca.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA %v valid %v pathlen %d zero %v; want CA:TRUE pathlen 0", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %b, want certSign|crlSign", c.KeyUsage)
	}
	if len(c.ExtKeyUsage) != 0 {
		t.Errorf("extended key usage %v, want none", c.ExtKeyUsage)
	}
	if _, ok := c.PublicKey.(ed25519.PublicKey); !ok || c.SignatureAlgorithm != x509.PureEd25519 {
		t.Errorf("key %T signed with %v, want Ed25519", c.PublicKey, c.SignatureAlgorithm)
	}
	if len(c.SubjectKeyId) != 20 {
		t.Errorf("subject key ID %x, want 20 bytes", c.SubjectKeyId)
	}
	if c.SerialNumber.Sign() <= 0 || len(c.SerialNumber.Bytes()) != 16 {
		t.Errorf("serial %x, want 16 positive bytes", c.SerialNumber)
	}
	if !c.NotBefore.Equal(testNow.Add(-identity.Backdate)) || !c.NotAfter.Equal(testNow.Add(identity.CALifetime)) {
		t.Errorf("valid %v to %v, want %v to %v", c.NotBefore, c.NotAfter, testNow.Add(-identity.Backdate), testNow.Add(identity.CALifetime))
	}
	if c.Subject.CommonName != "Palyra gateway on test-host" || fmt.Sprint(c.Subject.Organization) != "[Palyra]" || c.Subject.String() != c.Issuer.String() {
		t.Errorf("subject %v issuer %v", c.Subject, c.Issuer)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if ca.Fingerprint() != sha256.Sum256(c.Raw) {
		t.Error("Fingerprint is not the SHA-256 of the certificate")
	}
	if ca.Name() != "Palyra gateway on test-host" {
		t.Errorf("Name() = %q", ca.Name())
	}
	if !ca.Pool().Equal(ca.Pool()) || ca.Pool() == ca.Pool() {
		t.Error("Pool should return equal, separate pools")
	}
	other := newTestCA(t, "Palyra gateway on test-host")
	if bytes.Equal(other.Certificate().SerialNumber.Bytes(), c.SerialNumber.Bytes()) || other.Fingerprint() == ca.Fingerprint() {
		t.Error("two CAs share a serial number or fingerprint")
	}
}

func TestNewCARejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, caName string
		now          time.Time
		want         string
	}{
		{"empty name", "", testNow, "the name is empty"},
		{"blank name", "   ", testNow, "the name is empty"},
		{"long name", strings.Repeat("x", 65), testNow, "at most 64"},
		{"control character", "gate\nway", testNow, "control characters"},
		{"padded", " gateway", testNow, "white space"},
		{"invalid UTF-8", "gate\xffway", testNow, "UTF-8"},
		{"no time", "gateway", time.Time{}, "the time is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := identity.NewCA(rand.Reader, tt.caName, tt.now)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewCA(%q) = %v, want an error saying %q", tt.caName, err, tt.want)
			}
		})
	}
	if _, err := identity.NewCA(rand.Reader, strings.Repeat("é", 64), testNow); err != nil {
		t.Errorf("64 two-byte characters: %v", err)
	}
}

func TestCANeverShowsKeyMaterial(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	priv := caPrivateKey(t, ca)
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("ca", "ca", ca)
	outputs := []string{js.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, ca), fmt.Sprintf(verb, *ca))
	}
	for _, out := range outputs {
		for _, secret := range []string{fmt.Sprintf("%x", priv.Seed()), strings.Trim(fmt.Sprint(priv.Seed()[:8]), "[]")} {
			if strings.Contains(out, secret) {
				t.Errorf("output %q contains the CA key", out)
			}
		}
	}
	if want := `CA("gw", ` + ca.Fingerprint().String() + ")"; ca.String() != want {
		t.Errorf("String() = %s, want %s", ca, want)
	}
}

func TestParseCARoundTrip(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	certPEM, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := identity.ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if back.Fingerprint() != ca.Fingerprint() || !back.Certificate().Equal(ca.Certificate()) {
		t.Error("round trip changed the certificate")
	}
	// The loaded CA issues certificates that the original verifies.
	k := newTestDeviceKey(t)
	cert := issueDevice(t, back, k)
	if id, err := identity.VerifyDeviceCertificate(ca.Certificate(), [][]byte{cert.Raw}, testNow); err != nil || id != k.ID() {
		t.Errorf("VerifyDeviceCertificate = %v, %v", id, err)
	}
}

func TestParseCARejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	certPEM, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	_, otherKeyPEM, err := newTestCA(t, "gw").MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	device := newTestDeviceKey(t)
	deviceCertPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issueDevice(t, ca, device).Raw})
	deviceKeyPEM, err := device.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	// A CA certificate signed by another CA: a CA, but not self-signed.
	notSelfSigned := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signWithCA(t, ca, &x509.Certificate{
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, device.Public())})

	tests := []struct {
		name          string
		cert, key     []byte
		want          string
		wantSentinels []error
	}{
		{"key of another CA", certPEM, otherKeyPEM, "the key does not belong to the certificate", []error{identity.ErrInvalidCA}},
		{"device certificate", deviceCertPEM, deviceKeyPEM, "not a CA certificate", []error{identity.ErrInvalidCA}},
		{"CA signed by another CA", notSelfSigned, deviceKeyPEM, "not self-signed", []error{identity.ErrInvalidCA}},
		{"swapped", keyPEM, certPEM, `PEM block is "PRIVATE KEY"`, []error{identity.ErrInvalidCA}},
		{"empty certificate", nil, keyPEM, "no PEM block found", []error{identity.ErrInvalidCA}},
		{"empty key", certPEM, nil, "no PEM block found", []error{identity.ErrInvalidKey}},
		{"two certificates", append(bytes.Clone(certPEM), certPEM...), keyPEM, "unexpected data", []error{identity.ErrInvalidCA}},
		{"garbage certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), keyPEM, "x509", []error{identity.ErrInvalidCA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := identity.ParseCA(tt.cert, tt.key)
			if err == nil || got != nil {
				t.Fatalf("ParseCA = %v, nil; want an error", got)
			}
			for _, s := range tt.wantSentinels {
				if !errors.Is(err, s) {
					t.Errorf("error %q does not wrap %v", err, s)
				}
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}
