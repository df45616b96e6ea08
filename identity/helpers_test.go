package identity_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// testNow is the fixed time the tests issue and verify at.
var testNow = time.Date(2026, time.November, 2, 10, 30, 0, 0, time.UTC)

func newTestCA(t testing.TB, name string) *identity.CA {
	t.Helper()
	ca, err := identity.NewCA(rand.Reader, name, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newTestDeviceKey(t testing.TB) *identity.DeviceKey {
	t.Helper()
	k, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issueDevice issues a device certificate for k at testNow.
func issueDevice(t testing.TB, ca *identity.CA, k *identity.DeviceKey) *x509.Certificate {
	t.Helper()
	csr, err := k.CreateCSR(rand.Reader, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// issueServer issues a server certificate for a fresh key at testNow.
func issueServer(t testing.TB, ca *identity.CA, hosts ...string) *x509.Certificate {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServerCertificate(pub, "test gateway", hosts, identity.IssueOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// caPrivateKey extracts the CA's key through its PEM form, for tests that
// sign certificates the CA itself would never issue.
func caPrivateKey(t testing.TB, ca *identity.CA) ed25519.PrivateKey {
	t.Helper()
	_, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("CA key PEM does not decode")
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return priv.(ed25519.PrivateKey)
}

// signWithCA signs tmpl for pub directly with the CA's key, bypassing every
// issuance check, to make certificates the CA itself would never issue.
// Unset serial and validity get usable defaults.
func signWithCA(t testing.TB, ca *identity.CA, tmpl *x509.Certificate, pub crypto.PublicKey) []byte {
	t.Helper()
	if tmpl.SerialNumber == nil {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SerialNumber = serial
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow.Add(-identity.Backdate)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = testNow.Add(identity.DefaultDeviceCertLifetime)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), pub, caPrivateKey(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	return der
}
