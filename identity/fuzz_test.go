package identity_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"unicode"

	"github.com/palyra/palyra-go/identity"
)

// normalizeDeviceID spells s the way ParseDeviceID reads it.
func normalizeDeviceID(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || unicode.IsSpace(r):
		case r == '0':
			b.WriteRune('O')
		case r == '1':
			b.WriteRune('I')
		case r == '8':
			b.WriteRune('B')
		case 'a' <= r && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func FuzzParseDeviceID(f *testing.F) {
	f.Add(goldenID)
	f.Add(strings.ToLower(goldenID))
	f.Add(strings.ReplaceAll(goldenID, "-", " "))
	f.Add(strings.NewReplacer("O", "0", "I", "1", "B", "8").Replace(oibID(f).String()))
	f.Add(identity.DeviceID{}.String())
	f.Add("")
	f.Add("P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := identity.ParseDeviceID(s)
		if err != nil {
			if !id.IsZero() {
				t.Fatalf("ParseDeviceID(%q) returned %v with error %v", s, id, err)
			}
			return
		}
		canon := id.String()
		if again, err := identity.ParseDeviceID(canon); err != nil || again != id {
			t.Fatalf("ParseDeviceID(%q) = %v; its String %q parses to %v, %v", s, id, canon, again, err)
		}
		if got, want := normalizeDeviceID(s), strings.ReplaceAll(canon, "-", ""); got != want {
			t.Fatalf("ParseDeviceID(%q) accepted %q as %q", s, got, want)
		}
		var text identity.DeviceID
		if b, _ := id.MarshalText(); text.UnmarshalText(b) != nil || text != id {
			t.Fatalf("text round trip of %v gave %v", id, text)
		}
	})
}

func FuzzParseDeviceKeyPEM(f *testing.F) {
	good, err := newTestDeviceKey(f).MarshalPEM()
	if err != nil {
		f.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := identity.ParseDeviceKeyPEM(b)
		if err != nil {
			if k != nil {
				t.Fatalf("ParseDeviceKeyPEM returned a key with error %v", err)
			}
			return
		}
		out, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := identity.ParseDeviceKeyPEM(out)
		if err != nil || back.ID() != k.ID() || back.ID() != identity.DeviceIDFromPublicKey(k.Public()) {
			t.Fatalf("round trip of %v gave %v, %v", k, back, err)
		}
		msg := []byte("challenge")
		if !ed25519.Verify(k.Public(), msg, k.Sign(msg)) {
			t.Fatal("the parsed key's signatures do not verify")
		}
	})
}

// FuzzIssueDeviceCertificate feeds arbitrary requests to the CA: whatever it
// issues must name exactly the requesting key's device and verify.
func FuzzIssueDeviceCertificate(f *testing.F) {
	ca := newTestCA(f, "gw")
	k := newTestDeviceKey(f)
	good, err := k.CreateCSR(rand.Reader, "laptop")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(maliciousCSR(f, k))
	f.Add(issueDevice(f, ca, k).Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := ca.IssueDeviceCertificate(der, identity.IssueOptions{Now: testNow})
		if err != nil {
			return
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatalf("issued for an unparsable request: %v", err)
		}
		want := identity.DeviceIDFromPublicKey(csr.PublicKey.(ed25519.PublicKey))
		id, err := identity.VerifyDeviceCertificate(ca.Certificate(), [][]byte{cert.Raw}, testNow)
		if err != nil || id != want {
			t.Fatalf("issued certificate verifies as %v, %v; want %v", id, err, want)
		}
	})
}

// FuzzVerifyDeviceCertificate checks that no presented chain makes the
// verifier panic or name a device other than the leaf key's.
func FuzzVerifyDeviceCertificate(f *testing.F) {
	ca := newTestCA(f, "gw")
	f.Add(issueDevice(f, ca, newTestDeviceKey(f)).Raw, []byte(nil))
	f.Add(issueServer(f, ca, "gateway.example.com", "127.0.0.1").Raw, []byte(nil))
	f.Add(ca.Certificate().Raw, ca.Certificate().Raw)
	f.Fuzz(func(t *testing.T, leaf, extra []byte) {
		chain := [][]byte{leaf}
		if len(extra) > 0 {
			chain = append(chain, extra)
		}
		id, err := identity.VerifyDeviceCertificate(ca.Certificate(), chain, testNow)
		if err != nil {
			return
		}
		c, perr := x509.ParseCertificate(leaf)
		if perr != nil || len(chain) != 1 {
			t.Fatalf("accepted %d certificates, parse error %v", len(chain), perr)
		}
		if want := identity.DeviceIDFromPublicKey(c.PublicKey.(ed25519.PublicKey)); id != want {
			t.Fatalf("verified as %v, the key is %v's", id, want)
		}
	})
}

func FuzzParseCA(f *testing.F) {
	certPEM, keyPEM, err := newTestCA(f, "gw").MarshalPEM()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, keyPEM)
	f.Add(keyPEM, certPEM)
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		ca, err := identity.ParseCA(certPEM, keyPEM)
		if err != nil {
			return
		}
		c, k, err := ca.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := identity.ParseCA(c, k)
		if err != nil || back.Fingerprint() != ca.Fingerprint() {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseFingerprintBase64URL(f *testing.F) {
	f.Add(identity.CertificateFingerprint(nil).Base64URL())
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := identity.ParseFingerprintBase64URL(s)
		if err != nil {
			return
		}
		if fp.Base64URL() != s {
			t.Fatalf("%q parses to %v, which prints as %q", s, fp, fp.Base64URL())
		}
	})
}
