package identity_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// issueGateway issues a gateway peer certificate for a fresh key at testNow.
func issueGateway(t testing.TB, ca *identity.CA, id string) (*x509.Certificate, ed25519.PublicKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueGatewayCertificate(pub, id, identity.IssueOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return cert, pub
}

func TestVerifyGatewayCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	otherCA := newTestCA(t, "gw")
	good, pub := issueGateway(t, ca, "gw-a")
	fromOtherCA, _ := issueGateway(t, otherCA, "gw-a")
	device := issueDevice(t, ca, newTestDeviceKey(t))
	server := issueServer(t, ca, "gateway.example.com")
	crafted := func(edit func(*x509.Certificate)) [][]byte {
		c := &x509.Certificate{
			Subject:               pkix.Name{CommonName: "gw-a"},
			URIs:                  []*url.URL{{Scheme: "urn", Opaque: "palyra:gateway:gw-a"}},
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
		}
		edit(c)
		return [][]byte{signWithCA(t, ca, c, pub)}
	}
	tests := []struct {
		name  string
		chain [][]byte
		now   time.Time
		want  string
		is    error
	}{
		{"good", [][]byte{good.Raw}, testNow, "", nil},
		{"crafted like the CA does", crafted(func(*x509.Certificate) {}), testNow, "", nil},
		{"other CA", [][]byte{fromOtherCA.Raw}, testNow, "not signed by this gateway's CA", identity.ErrUntrusted},
		{"expired", [][]byte{good.Raw}, good.NotAfter.Add(time.Second), "expired at", identity.ErrExpired},
		{"a device's certificate", [][]byte{device.Raw}, testNow, "not for both client and server authentication", identity.ErrNotGatewayCertificate},
		{"a device URI with both usages", crafted(func(c *x509.Certificate) {
			c.URIs = []*url.URL{{Scheme: "urn", Opaque: "palyra:device:" + strings.Repeat("A", 36)}}
		}), testNow, "it is a device's certificate", identity.ErrNotGatewayCertificate},
		{"the server certificate", [][]byte{server.Raw}, testNow, "not for both client and server authentication", identity.ErrNotGatewayCertificate},
		{"client authentication only", crafted(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }), testNow,
			"not for both client and server authentication", identity.ErrNotGatewayCertificate},
		{"CA certificate", [][]byte{ca.Certificate().Raw}, testNow, "", identity.ErrNotGatewayCertificate},
		{"with the CA appended", [][]byte{good.Raw, ca.Certificate().Raw}, testNow, "2 certificates were presented", identity.ErrNotGatewayCertificate},
		{"nothing", nil, testNow, "no certificate was presented", identity.ErrNotGatewayCertificate},
		{"garbage", [][]byte{[]byte("garbage")}, testNow, "x509", identity.ErrUntrusted},
		{"common name of another gateway", crafted(func(c *x509.Certificate) { c.Subject.CommonName = "gw-b" }), testNow,
			`common name is "gw-b", but it names gateway "gw-a"`, identity.ErrNotGatewayCertificate},
		{"a DNS name too", crafted(func(c *x509.Certificate) { c.DNSNames = []string{"gw.example.com"} }), testNow, "exactly one gateway URI", identity.ErrNotGatewayCertificate},
		{"a bad gateway ID", crafted(func(c *x509.Certificate) {
			c.URIs[0].Opaque = "palyra:gateway:GW_A"
			c.Subject.CommonName = "GW_A"
		}), testNow, "use lowercase letters", identity.ErrNotGatewayCertificate},
		{"another URN", crafted(func(c *x509.Certificate) { c.URIs[0].Opaque = "palyra:thing:gw-a" }), testNow, "not a gateway", identity.ErrNotGatewayCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := identity.VerifyGatewayCertificate(ca.Certificate(), tt.chain, tt.now)
			if tt.is == nil {
				if err != nil || got != "gw-a" {
					t.Fatalf("VerifyGatewayCertificate = %q, %v; want gw-a", got, err)
				}
				return
			}
			if !errors.Is(err, tt.is) || got != "" {
				t.Fatalf("VerifyGatewayCertificate = %q, %v; want %v", got, err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// A gateway's certificate cannot pass for a device's: it has a client
// usage, an Ed25519 key and one URI, but the URI is a gateway's.
func TestGatewayCertificateIsNoDevice(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	cert, _ := issueGateway(t, ca, "gw-a")
	_, err := identity.VerifyDeviceCertificate(ca.Certificate(), [][]byte{cert.Raw}, testNow)
	if !errors.Is(err, identity.ErrNotDeviceCertificate) || !strings.Contains(err.Error(), "it is a gateway's certificate") {
		t.Fatalf("a gateway certificate as a device's: %v", err)
	}
	if err := identity.VerifyServerCertificate(ca.Certificate(), [][]byte{cert.Raw}, "gateway.example.com", testNow); !errors.Is(err, identity.ErrNotServerCertificate) {
		t.Fatalf("a gateway peer certificate as the server certificate for a host: %v", err)
	}
}

func TestIssueGatewayCertificateRefuses(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ id, want string }{
		{"", "has 0 characters"},
		{"-a", "starts or ends with a hyphen"},
		{"a b", "contains ' '"},
		{strings.Repeat("a", 64), "has 64 characters"},
	} {
		if _, err := ca.IssueGatewayCertificate(pub, tt.id, identity.IssueOptions{Now: testNow}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("IssueGatewayCertificate(%q): %v, want it to say %q", tt.id, err, tt.want)
		}
	}
	if _, err := ca.IssueGatewayCertificate(pub[:10], "gw-a", identity.IssueOptions{Now: testNow}); !errors.Is(err, identity.ErrInvalidKey) {
		t.Errorf("a short key: %v", err)
	}
}

func FuzzVerifyGatewayCertificate(f *testing.F) {
	ca := newTestCA(f, "gw")
	good, _ := issueGateway(f, ca, "gw-a")
	f.Add(good.Raw)
	f.Add(issueDevice(f, ca, newTestDeviceKey(f)).Raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		id, err := identity.VerifyGatewayCertificate(ca.Certificate(), [][]byte{der}, testNow)
		if err != nil {
			if id != "" {
				t.Fatalf("an ID %q with error %v", id, err)
			}
			return
		}
		if identity.CheckGatewayID(id) != nil {
			t.Fatalf("verified a certificate with the bad gateway ID %q", id)
		}
		if _, err := identity.VerifyDeviceCertificate(ca.Certificate(), [][]byte{der}, testNow); err == nil {
			t.Fatal("one certificate verified as both a gateway's and a device's")
		}
	})
}
