package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

func TestVerifyDeviceCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	otherCA := newTestCA(t, "gw")
	k := newTestDeviceKey(t)
	id := k.ID()
	good := issueDevice(t, ca, k)
	fromOtherCA := issueDevice(t, otherCA, k)
	server := issueServer(t, ca, "gateway.example.com")
	mallory := newTestDeviceKey(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uri := func(id identity.DeviceID) []*url.URL {
		u, err := url.Parse(id.URI())
		if err != nil {
			t.Fatal(err)
		}
		return []*url.URL{u}
	}
	// device returns a template that differs from a proper device
	// certificate for k only where edit changes it.
	device := func(edit func(*x509.Certificate)) *x509.Certificate {
		c := &x509.Certificate{
			Subject:               pkix.Name{CommonName: id.String()},
			URIs:                  uri(id),
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
		}
		edit(c)
		return c
	}
	crafted := func(edit func(*x509.Certificate)) [][]byte {
		return [][]byte{signWithCA(t, ca, device(edit), k.Public())}
	}

	tests := []struct {
		name  string
		chain [][]byte
		now   time.Time
		want  string
		is    error
	}{
		{"good", [][]byte{good.Raw}, testNow, "", nil},
		{"good at the last second", [][]byte{good.Raw}, good.NotAfter, "", nil},
		{"good at the first second", [][]byte{good.Raw}, good.NotBefore, "", nil},
		{"crafted like the CA does", crafted(func(*x509.Certificate) {}), testNow, "", nil},
		{"other CA", [][]byte{fromOtherCA.Raw}, testNow, "the certificate is not signed by this gateway's CA", identity.ErrUntrusted},
		{"expired", [][]byte{good.Raw}, good.NotAfter.Add(time.Second), "the certificate expired at " + good.NotAfter.Format(time.RFC3339), identity.ErrExpired},
		{"not yet valid", [][]byte{good.Raw}, good.NotBefore.Add(-time.Second), "the certificate is not valid until", identity.ErrExpired},
		{"server certificate", [][]byte{server.Raw}, testNow, "not for client authentication", identity.ErrNotDeviceCertificate},
		{"CA certificate", [][]byte{ca.Certificate().Raw}, testNow, "is a CA certificate", identity.ErrNotDeviceCertificate},
		{"with the CA appended", [][]byte{good.Raw, ca.Certificate().Raw}, testNow, "2 certificates were presented", identity.ErrNotDeviceCertificate},
		{"with another device appended", [][]byte{good.Raw, issueDevice(t, ca, mallory).Raw}, testNow, "2 certificates were presented", identity.ErrNotDeviceCertificate},
		{"nothing", nil, testNow, "no certificate was presented", identity.ErrNotDeviceCertificate},
		{"garbage", [][]byte{[]byte("garbage")}, testNow, "x509", identity.ErrUntrusted},
		{"common name of another device", crafted(func(c *x509.Certificate) { c.Subject.CommonName = mallory.ID().String() }), testNow,
			"common name is \"" + mallory.ID().String() + "\", but its key belongs to device " + id.String(), identity.ErrNotDeviceCertificate},
		{"URI of another device", crafted(func(c *x509.Certificate) { c.URIs = uri(mallory.ID()) }), testNow,
			"names \"" + mallory.ID().URI() + "\", but its key belongs to device " + id.String(), identity.ErrNotDeviceCertificate},
		{"no URI", crafted(func(c *x509.Certificate) { c.URIs = nil }), testNow, "exactly one device URI", identity.ErrNotDeviceCertificate},
		{"two URIs", crafted(func(c *x509.Certificate) { c.URIs = append(c.URIs, uri(mallory.ID())...) }), testNow, "exactly one device URI", identity.ErrNotDeviceCertificate},
		{"extra DNS name", crafted(func(c *x509.Certificate) { c.DNSNames = []string{"gateway.example.com"} }), testNow, "exactly one device URI", identity.ErrNotDeviceCertificate},
		{"extra IP address", crafted(func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.IPv6loopback} }), testNow, "exactly one device URI", identity.ErrNotDeviceCertificate},
		{"lowercase URI", crafted(func(c *x509.Certificate) { c.URIs[0].Opaque = strings.ToLower(c.URIs[0].Opaque) }), testNow, "but its key belongs to device", identity.ErrNotDeviceCertificate},
		{"no digitalSignature", crafted(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement }), testNow, "may not sign", identity.ErrNotDeviceCertificate},
		{"no extended key usage", crafted(func(c *x509.Certificate) { c.ExtKeyUsage = nil }), testNow, "not for client authentication", identity.ErrNotDeviceCertificate},
		{"any extended key usage", crafted(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny} }), testNow, "not for client authentication", identity.ErrNotDeviceCertificate},
		{"CA:TRUE", crafted(func(c *x509.Certificate) { c.IsCA = true; c.KeyUsage |= x509.KeyUsageCertSign }), testNow, "is a CA certificate", identity.ErrNotDeviceCertificate},
		{"ECDSA key", [][]byte{signWithCA(t, ca, device(func(*x509.Certificate) {}), &ecKey.PublicKey)}, testNow, "key is ECDSA P-256, device keys are Ed25519", identity.ErrNotDeviceCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := identity.VerifyDeviceCertificate(ca.Certificate(), tt.chain, tt.now)
			if tt.is == nil {
				if err != nil || got != id {
					t.Fatalf("VerifyDeviceCertificate = %v, %v; want %v", got, err, id)
				}
				return
			}
			if !errors.Is(err, tt.is) || !got.IsZero() {
				t.Fatalf("VerifyDeviceCertificate = %v, %v; want %v", got, err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
	if _, err := identity.VerifyDeviceCertificate(nil, [][]byte{good.Raw}, testNow); !errors.Is(err, identity.ErrUntrusted) {
		t.Errorf("without a CA: %v, want ErrUntrusted", err)
	}
	if _, err := identity.VerifyDeviceCertificate(ca.Certificate(), [][]byte{good.Raw}, time.Time{}); err == nil {
		t.Error("verified at the zero time")
	}
}

func TestVerifyServerCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	otherCA := newTestCA(t, "gw")
	server := issueServer(t, ca, "gateway.example.com", "127.0.0.1", "::1")
	device := issueDevice(t, ca, newTestDeviceKey(t))
	tests := []struct {
		name  string
		chain [][]byte
		host  string
		now   time.Time
		want  string
		is    error
	}{
		{"good, no host check", [][]byte{server.Raw}, "", testNow, "", nil},
		{"good DNS name", [][]byte{server.Raw}, "gateway.example.com", testNow, "", nil},
		{"good IPv4", [][]byte{server.Raw}, "127.0.0.1", testNow, "", nil},
		{"good IPv6", [][]byte{server.Raw}, "::1", testNow, "", nil},
		{"good with the CA appended", [][]byte{server.Raw, ca.Certificate().Raw}, "", testNow, "", nil},
		{"other host", [][]byte{server.Raw}, "other.example.com", testNow, `the certificate is not for "other.example.com"`, identity.ErrNotServerCertificate},
		{"other IP", [][]byte{server.Raw}, "192.0.2.1", testNow, `not for "192.0.2.1"`, identity.ErrNotServerCertificate},
		{"other CA", [][]byte{issueServer(t, otherCA, "gateway.example.com").Raw}, "", testNow, "not signed by this gateway's CA", identity.ErrUntrusted},
		{"device certificate", [][]byte{device.Raw}, "", testNow, "not for server authentication", identity.ErrNotServerCertificate},
		{"CA certificate", [][]byte{ca.Certificate().Raw}, "", testNow, "not for server authentication", identity.ErrNotServerCertificate},
		{"expired", [][]byte{server.Raw}, "", server.NotAfter.Add(time.Second), "the certificate expired at", identity.ErrExpired},
		{"nothing", nil, "", testNow, "no certificate was presented", identity.ErrNotServerCertificate},
		{"garbage", [][]byte{[]byte("x")}, "", testNow, "x509", identity.ErrUntrusted},
		{"garbage appended", [][]byte{server.Raw, []byte("x")}, "", testNow, "x509", identity.ErrUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := identity.VerifyServerCertificate(ca.Certificate(), tt.chain, tt.host, tt.now)
			if tt.is == nil {
				if err != nil {
					t.Fatalf("VerifyServerCertificate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("VerifyServerCertificate = %v, want %v saying %q", err, tt.is, tt.want)
			}
		})
	}
}

// TestTLSHandshake runs a TLS 1.3 handshake over net.Pipe with the
// certificates and keys this package makes, verifying both sides with it:
// the node pins the CA, the gateway takes the device ID from the chain.
func TestTLSHandshake(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	device := newTestDeviceKey(t)
	deviceCert := issueDevice(t, ca, device)
	serverKey := newTestDeviceKey(t) // any Ed25519 key will do for the server
	serverCert, err := ca.IssueServerCertificate(serverKey.Public(), "gw", []string{"127.0.0.1"}, identity.IssueOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return testNow.Add(time.Hour) }

	gotID := make(chan identity.DeviceID, 1)
	serverConf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Time:         clock,
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey.Signer()}},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			id, err := identity.VerifyDeviceCertificate(ca.Certificate(), rawCerts, clock())
			if err == nil {
				gotID <- id
			}
			return err
		},
	}
	clientConf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Time:               clock,
		ServerName:         "127.0.0.1",
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate with the pinned CA
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			return identity.VerifyServerCertificate(ca.Certificate(), rawCerts, "127.0.0.1", clock())
		},
		Certificates: []tls.Certificate{{Certificate: [][]byte{deviceCert.Raw}, PrivateKey: device.Signer()}},
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	srv, cli := tls.Server(c1, serverConf), tls.Client(c2, clientConf)
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(t.Context()) }()
	if err := cli.HandshakeContext(t.Context()); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if id := <-gotID; id != device.ID() {
		t.Errorf("the gateway saw device %v, want %v", id, device.ID())
	}
}
