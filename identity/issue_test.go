package identity_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// OIDs of the extensions an issued certificate may carry.
var (
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

func extensionOIDs(c *x509.Certificate) []string {
	var oids []string
	for _, e := range c.Extensions {
		oids = append(oids, e.Id.String())
	}
	slices.Sort(oids)
	return oids
}

func wantExtensionOIDs(oids ...asn1.ObjectIdentifier) []string {
	var s []string
	for _, o := range oids {
		s = append(s, o.String())
	}
	slices.Sort(s)
	return s
}

func TestIssueDeviceCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	k := newTestDeviceKey(t)
	c := issueDevice(t, ca, k)
	id := k.ID()

	if c.Subject.String() != "CN="+id.String() {
		t.Errorf("subject %q, want only CN=%s", c.Subject, id)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != id.URI() {
		t.Errorf("URIs %v, want [%s]", c.URIs, id.URI())
	}
	if len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0 {
		t.Errorf("other names: %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %b, want digitalSignature", c.KeyUsage)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(c.UnknownExtKeyUsage) != 0 {
		t.Errorf("extended key usage %v %v, want clientAuth only", c.ExtKeyUsage, c.UnknownExtKeyUsage)
	}
	if c.IsCA || !c.BasicConstraintsValid {
		t.Error("want basic constraints CA:FALSE")
	}
	if !bytes.Equal(c.AuthorityKeyId, ca.Certificate().SubjectKeyId) {
		t.Errorf("authority key ID %x, want the CA's %x", c.AuthorityKeyId, ca.Certificate().SubjectKeyId)
	}
	// RFC 7093 method 1 over the raw Ed25519 key.
	if sum := sha256.Sum256(k.Public()); !bytes.Equal(c.SubjectKeyId, sum[:20]) {
		t.Errorf("subject key ID %x, want %x", c.SubjectKeyId, sum[:20])
	}
	if !c.NotBefore.Equal(testNow.Add(-identity.Backdate)) || !c.NotAfter.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("valid %v to %v, want %v to %v", c.NotBefore, c.NotAfter, testNow.Add(-time.Minute), testNow.Add(24*time.Hour))
	}
	if c.SerialNumber.Sign() <= 0 || len(c.SerialNumber.Bytes()) != 16 {
		t.Errorf("serial %x, want 16 positive bytes", c.SerialNumber)
	}
	if c.SignatureAlgorithm != x509.PureEd25519 {
		t.Errorf("signature algorithm %v", c.SignatureAlgorithm)
	}
	if got, want := extensionOIDs(c), wantExtensionOIDs(oidSubjectKeyID, oidKeyUsage, oidSubjectAltName, oidBasicConstraints, oidAuthorityKeyID, oidExtKeyUsage); !slices.Equal(got, want) {
		t.Errorf("extensions %v, want %v", got, want)
	}
}

func TestIssueDeviceCertificateValidity(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	caNotAfter := ca.Certificate().NotAfter
	csr, err := newTestDeviceKey(t).CreateCSR(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                        string
		opts                        identity.IssueOptions
		wantNotBefore, wantNotAfter time.Time
		wantErr                     string
	}{
		{"default", identity.IssueOptions{Now: testNow}, testNow.Add(-time.Minute), testNow.Add(24 * time.Hour), ""},
		{"one hour", identity.IssueOptions{Now: testNow, Lifetime: time.Hour}, testNow.Add(-time.Minute), testNow.Add(time.Hour), ""},
		{"sub-second now", identity.IssueOptions{Now: testNow.Add(999 * time.Millisecond)}, testNow.Add(-time.Minute), testNow.Add(24 * time.Hour), ""},
		{"other time zone", identity.IssueOptions{Now: testNow.In(time.FixedZone("X", 5*3600))}, testNow.Add(-time.Minute), testNow.Add(24 * time.Hour), ""},
		{"clipped to the CA", identity.IssueOptions{Now: caNotAfter.Add(-time.Hour)}, caNotAfter.Add(-time.Hour - time.Minute), caNotAfter, ""},
		{"backdate clipped to the CA", identity.IssueOptions{Now: testNow.Add(-30 * time.Second)}, ca.Certificate().NotBefore, testNow.Add(24*time.Hour - 30*time.Second), ""},
		{"CA expired", identity.IssueOptions{Now: caNotAfter.Add(time.Second)}, time.Time{}, time.Time{}, "the CA certificate expired at"},
		{"before the CA", identity.IssueOptions{Now: testNow.Add(-time.Hour)}, time.Time{}, time.Time{}, "the CA certificate is not valid until"},
		{"no time", identity.IssueOptions{}, time.Time{}, time.Time{}, "IssueOptions.Now is not set"},
		{"negative lifetime", identity.IssueOptions{Now: testNow, Lifetime: -time.Hour}, time.Time{}, time.Time{}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ca.IssueDeviceCertificate(csr, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("IssueDeviceCertificate = %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.NotBefore.Equal(tt.wantNotBefore) || !c.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("valid %v to %v, want %v to %v", c.NotBefore, c.NotAfter, tt.wantNotBefore, tt.wantNotAfter)
			}
		})
	}
	if _, err := ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: caNotAfter.Add(time.Second)}); !errors.Is(err, identity.ErrExpired) {
		t.Errorf("issuing after the CA expired: %v, want ErrExpired", err)
	}
}

// maliciousCSR asks for everything a device must not get: another subject,
// server names, another device's URI, CA powers and a private extension.
func maliciousCSR(t testing.TB, k *identity.DeviceKey) []byte {
	t.Helper()
	bc, err := asn1.Marshal(struct {
		IsCA       bool
		MaxPathLen int
	}{true, 5})
	if err != nil {
		t.Fatal(err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}, {2, 5, 29, 37, 0}})
	if err != nil {
		t.Fatal(err)
	}
	other := newTestDeviceKey(t).ID()
	otherURI, err := url.Parse(other.URI())
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{
			CommonName:   other.String(),
			Organization: []string{"Evil Corp"},
			Country:      []string{"XX"},
		},
		DNSNames:       []string{"gateway.example.com", "*.example.com"},
		IPAddresses:    []net.IP{net.ParseIP("127.0.0.1")},
		EmailAddresses: []string{"admin@example.com"},
		URIs:           []*url.URL{otherURI},
		ExtraExtensions: []pkix.Extension{
			{Id: oidBasicConstraints, Critical: true, Value: bc},
			{Id: oidExtKeyUsage, Value: eku},
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{0x05, 0x00}},
		},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestIssueDeviceCertificateIgnoresRequestedNames(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	k := newTestDeviceKey(t)
	csrDER := maliciousCSR(t, k)
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil || csr.CheckSignature() != nil || len(csr.Extensions) < 4 {
		t.Fatalf("the malicious CSR is not what the test needs: %v", err)
	}

	c, err := ca.IssueDeviceCertificate(csrDER, identity.IssueOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.String() != "CN="+k.ID().String() {
		t.Errorf("subject %q, want CN=%s", c.Subject, k.ID())
	}
	if len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0 || len(c.URIs) != 1 || c.URIs[0].String() != k.ID().URI() {
		t.Errorf("names %v %v %v %v, want only %s", c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs, k.ID().URI())
	}
	if c.IsCA || c.MaxPathLen > 0 {
		t.Error("the certificate is a CA")
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v, want clientAuth only", c.ExtKeyUsage)
	}
	if got, want := extensionOIDs(c), wantExtensionOIDs(oidSubjectKeyID, oidKeyUsage, oidSubjectAltName, oidBasicConstraints, oidAuthorityKeyID, oidExtKeyUsage); !slices.Equal(got, want) {
		t.Errorf("extensions %v, want %v", got, want)
	}
	for _, bad := range []string{"Evil", "example.com", "admin@"} {
		if bytes.Contains(c.Raw, []byte(bad)) {
			t.Errorf("the certificate contains %q", bad)
		}
	}
	if id, err := identity.VerifyDeviceCertificate(ca.Certificate(), [][]byte{c.Raw}, testNow); err != nil || id != k.ID() {
		t.Errorf("VerifyDeviceCertificate = %v, %v; want %v", id, err, k.ID())
	}
}

func TestIssueDeviceCertificateRejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	k := newTestDeviceKey(t)
	good, err := k.CreateCSR(rand.Reader, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	badSig := bytes.Clone(good)
	badSig[len(badSig)-1] ^= 0x01 // the signature is the last field
	badBody := bytes.Clone(good)
	badBody[bytes.Index(badBody, []byte("laptop"))] = 'L' // the signed subject
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ec"}}, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "rsa"}}, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	serverCert := issueServer(t, ca, "gateway.example.com")

	tests := []struct {
		name string
		csr  []byte
		want string
	}{
		{"tampered signature", badSig, "signature does not verify"},
		{"tampered subject", badBody, "signature does not verify"},
		{"ECDSA key", ecCSR, "the request's key is ECDSA P-256, device keys are Ed25519"},
		{"RSA key", rsaCSR, "the request's key is RSA, device keys are Ed25519"},
		{"empty", nil, "invalid certificate request"},
		{"garbage", []byte("garbage"), "invalid certificate request"},
		{"trailing data", append(bytes.Clone(good), 0), "invalid certificate request"},
		{"truncated", good[:len(good)-10], "invalid certificate request"},
		{"a certificate", serverCert.Raw, "invalid certificate request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ca.IssueDeviceCertificate(tt.csr, identity.IssueOptions{Now: testNow})
			if !errors.Is(err, identity.ErrInvalidCSR) || c != nil {
				t.Fatalf("IssueDeviceCertificate = %v, %v; want ErrInvalidCSR", c, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestIssueServerCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		hosts   []string
		wantDNS []string
		wantIPs []string
	}{
		{"name and loopback", []string{"gateway.example.com", "127.0.0.1", "::1"}, []string{"gateway.example.com"}, []string{"127.0.0.1", "::1"}},
		{"normalized", []string{"Gateway.Example.COM.", "[::1]", "::ffff:192.0.2.7"}, []string{"gateway.example.com"}, []string{"::1", "192.0.2.7"}},
		{"duplicates", []string{"localhost", "LOCALHOST", "127.0.0.1", "127.0.0.1"}, []string{"localhost"}, []string{"127.0.0.1"}},
		{"IP only", []string{"192.0.2.7"}, nil, []string{"192.0.2.7"}},
		{"single label", []string{"gateway"}, []string{"gateway"}, nil},
	}
	for _, tt := range tests {
		for _, key := range []struct {
			name string
			pub  any
		}{{"ed25519", edPub}, {"p256", &p256.PublicKey}} {
			t.Run(tt.name+"/"+key.name, func(t *testing.T) {
				t.Parallel()
				c, err := ca.IssueServerCertificate(key.pub, "gw", tt.hosts, identity.IssueOptions{Now: testNow})
				if err != nil {
					t.Fatal(err)
				}
				var ips []string
				for _, ip := range c.IPAddresses {
					ips = append(ips, ip.String())
				}
				if !slices.Equal(c.DNSNames, tt.wantDNS) || !slices.Equal(ips, tt.wantIPs) {
					t.Errorf("names %v %v, want %v %v", c.DNSNames, ips, tt.wantDNS, tt.wantIPs)
				}
				if len(c.Subject.Names) != 0 {
					t.Errorf("subject %q, want empty", c.Subject)
				}
				if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
					t.Errorf("usage %v %b CA %v, want serverAuth, digitalSignature, not a CA", c.ExtKeyUsage, c.KeyUsage, c.IsCA)
				}
				for _, e := range c.Extensions {
					if e.Id.Equal(oidSubjectAltName) && !e.Critical {
						t.Error("the subject alternative name must be critical with an empty subject")
					}
				}
				if !c.NotBefore.Equal(testNow.Add(-identity.Backdate)) || !c.NotAfter.Equal(testNow.Add(identity.DefaultServerCertLifetime)) {
					t.Errorf("valid %v to %v", c.NotBefore, c.NotAfter)
				}
				// At most 7 days counted inclusively: short-lived in the BRs' sense.
				if d := c.NotAfter.Sub(c.NotBefore) + time.Second; d > 7*24*time.Hour {
					t.Errorf("validity period %v is longer than 7 days", d)
				}
				for _, h := range tt.hosts {
					if err := identity.VerifyServerCertificate(ca.Certificate(), [][]byte{c.Raw}, strings.TrimSuffix(h, "."), testNow); err != nil {
						t.Errorf("VerifyServerCertificate(%q): %v", h, err)
					}
				}
			})
		}
	}
}

func TestIssueServerCertificateRejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "gw")
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		pub   any
		hosts []string
		want  string
	}{
		{"no hosts", edPub, nil, "no host names or addresses given"},
		{"empty host", edPub, []string{"gateway.example.com", ""}, "a host name is empty"},
		{"underscore", edPub, []string{"my_gateway.example.com"}, "neither an IP address nor a valid DNS name"},
		{"wildcard", edPub, []string{"*.example.com"}, "neither an IP address nor a valid DNS name"},
		{"leading hyphen", edPub, []string{"-gw.example.com"}, "starts or ends with a hyphen"},
		{"empty label", edPub, []string{"gw..example.com"}, "1 to 63 characters"},
		{"long label", edPub, []string{strings.Repeat("a", 64) + ".com"}, "1 to 63 characters"},
		{"with port", edPub, []string{"gateway.example.com:7443"}, "neither an IP address nor a valid DNS name"},
		{"IP with port", edPub, []string{"127.0.0.1:7443"}, "neither an IP address nor a valid DNS name"},
		{"zone", edPub, []string{"fe80::1%eth0"}, "has a zone"},
		{"numeric TLD", edPub, []string{"1.2.3"}, "the last label is all digits"},
		{"space", edPub, []string{"gate way"}, "neither an IP address nor a valid DNS name"},
		{"URL", edPub, []string{"https://gateway.example.com"}, "neither an IP address nor a valid DNS name"},
		{"RSA key", &rsaKey.PublicKey, []string{"gw.example.com"}, "the server key is RSA"},
		{"P-521 key", &p521.PublicKey, []string{"gw.example.com"}, "the server key is ECDSA P-521"},
		{"no key", nil, []string{"gw.example.com"}, "the server key is missing"},
		{"empty ECDSA key", &ecdsa.PublicKey{}, []string{"gw.example.com"}, "the server key is ECDSA,"},
		{"nil ECDSA key", (*ecdsa.PublicKey)(nil), []string{"gw.example.com"}, "the server key is ECDSA,"},
		{"small-order key", ed25519.PublicKey(make([]byte, 32)), []string{"gw.example.com"}, "small order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ca.IssueServerCertificate(tt.pub, "gw", tt.hosts, identity.IssueOptions{Now: testNow})
			if err == nil || c != nil {
				t.Fatalf("IssueServerCertificate = %v, nil; want an error", c)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `for gateway "gw"`) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}
