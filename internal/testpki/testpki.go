// Package testpki makes the certificates the node-session tests need, the
// way the gateway makes them: a gateway CA, the gateway's server
// certificate for 127.0.0.1, and devices with CA-issued certificates.
package testpki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// NewCA is a new gateway CA named name.
func NewCA(t testing.TB, name string) *identity.CA {
	t.Helper()
	ca, err := identity.NewCA(rand.Reader, name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// ServerCert is the gateway's certificate for 127.0.0.1, served with the
// CA certificate after it as the gateway does.
func ServerCert(t testing.TB, ca *identity.CA) *tls.Certificate {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServerCertificate(pub, "test", []string{"127.0.0.1"}, identity.IssueOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw, ca.Certificate().Raw}, PrivateKey: priv, Leaf: cert}
}

// Device is a device key with a certificate from the CA.
type Device struct {
	Key  *identity.DeviceKey
	Cert *tls.Certificate
}

// NewDevice makes a device key and has ca certify it.
func NewDevice(t testing.TB, ca *identity.CA) *Device {
	t.Helper()
	key, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := key.CreateCSR(rand.Reader, "node")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return &Device{Key: key, Cert: &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key.Signer(), Leaf: cert}}
}

// ID is the device's ID.
func (d *Device) ID() identity.DeviceID { return d.Key.ID() }
