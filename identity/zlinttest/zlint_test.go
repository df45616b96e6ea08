package zlinttest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/palyra/palyra-go/identity"
)

// Lints of the CA/Browser Forum Baseline Requirements that cannot hold for
// a private PKI whose members pin its CA. Everything else must pass.
var (
	// The design mandates Ed25519; the BRs allow only RSA and ECDSA.
	excludedEd25519Key = map[string]string{
		"e_algorithm_identifier_improper_encoding": "BR 7.1.3.1 allows only RSA and ECDSA keys; the design mandates Ed25519",
	}
	excludedEd25519Signature = map[string]string{
		"e_signature_algorithm_not_supported": "BR 7.1.3.2 allows only RSA and ECDSA signatures; the gateway CA signs with Ed25519",
	}
	excludedCA = map[string]string{
		"e_ca_country_name_missing": "a gateway CA belongs to no legal entity with a known country; inventing one would be false",
	}
	excludedServer = map[string]string{
		"e_ext_san_contains_reserved_ip":          "a local gateway listens on loopback (127.0.0.1, ::1); reserved addresses are off limits to public CAs only",
		"e_sub_cert_aia_missing":                  "a private CA that nodes pin has no public repository or OCSP responder to point at",
		"e_sub_cert_certificate_policies_missing": "the CA/B Forum policy OIDs assert BR compliance, which a private CA must not claim",
		"e_sub_cert_cert_policy_empty":            "the CA/B Forum policy OIDs assert BR compliance, which a private CA must not claim",
	}
)

// testNow is the fixed time the certificates are issued at.
var testNow = time.Date(2026, time.November, 2, 10, 30, 0, 0, time.UTC)

func union(ms ...map[string]string) map[string]string {
	u := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			u[k] = v
		}
	}
	return u
}

// TestZlint lints every kind of certificate the package issues with zlint's
// full default registry: no errors or fatals outside the exclusions above.
// Warnings and notices are logged for the record.
func TestZlint(t *testing.T) {
	t.Parallel()
	ca, err := identity.NewCA(rand.Reader, "Palyra gateway on test-host", testNow)
	if err != nil {
		t.Fatal(err)
	}
	device := issueDevice(t, ca)
	hosts := []string{"gateway.example.com", "127.0.0.1", "::1"}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serverEd25519, err := ca.IssueServerCertificate(edPub, "test gateway", hosts, identity.IssueOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serverECDSA, err := ca.IssueServerCertificate(&ecKey.PublicKey, "test gateway", hosts, identity.IssueOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		der      []byte
		excluded map[string]string
	}{
		{"ca", ca.Certificate().Raw, union(excludedEd25519Key, excludedEd25519Signature, excludedCA)},
		{"device", device.Raw, nil},
		{"server-ed25519-key", serverEd25519.Raw, union(excludedEd25519Key, excludedEd25519Signature, excludedServer)},
		{"server-ecdsa-key", serverECDSA.Raw, union(excludedEd25519Signature, excludedServer)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := zx509.ParseCertificate(tt.der)
			if err != nil {
				t.Fatal(err)
			}
			rs := zlint.LintCertificate(c)
			names := make([]string, 0, len(rs.Results))
			for n := range rs.Results {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				r := rs.Results[n]
				switch r.Status {
				case lint.Error, lint.Fatal:
					if reason, ok := tt.excluded[n]; ok {
						t.Logf("excluded %s %s: %s", r.Status, n, reason)
						continue
					}
					t.Errorf("%s %s %s", r.Status, n, r.Details)
				case lint.Warn, lint.Notice:
					t.Logf("%s %s %s", r.Status, n, r.Details)
				}
			}
		})
	}
}

// issueDevice issues a device certificate for a fresh device key at testNow.
func issueDevice(t *testing.T, ca *identity.CA) *x509.Certificate {
	t.Helper()
	k, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
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
