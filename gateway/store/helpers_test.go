package store

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// t0 is the tests' "now"; nothing here reads the wall clock.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func fixedClock() time.Time { return t0 }

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Now: fixedClock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.db")
	s := openAt(t, path)
	t.Cleanup(func() { s.Close() })
	return s, path
}

var deviceSeed atomic.Uint32

// newDevice returns a fresh device ID and its public key.
func newDevice(t testing.TB) (identity.DeviceID, ed25519.PublicKey) {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	n := deviceSeed.Add(1)
	seed[0], seed[1], seed[2], seed[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return identity.DeviceIDFromPublicKey(pub), pub
}

var selectorSeq atomic.Uint32

// testCode returns a code to create with a selector unique in the process.
func testCode(autoApprove bool) Code {
	n := selectorSeq.Add(1)
	return Code{
		Selector:    fmt.Sprintf("%03d", n%1000),
		Name:        fmt.Sprintf("code %d", n),
		PINSecret:   fmt.Sprintf("PINSECRET%06d", n),
		LinkSecret:  []byte(fmt.Sprintf("LINKSECRET%06d", n)),
		AutoApprove: autoApprove,
		CreatedAt:   t0,
		ExpiresAt:   t0.Add(10 * time.Minute),
	}
}

func mustCreateCode(t testing.TB, s *Store, c Code) Code {
	t.Helper()
	got, err := s.CreateCode(context.Background(), c)
	if err != nil {
		t.Fatalf("CreateCode: %v", err)
	}
	return got
}

// testRequest returns a request for a fresh device.
func testRequest(t testing.TB) Request {
	t.Helper()
	id, pub := newDevice(t)
	return Request{
		DeviceID:         id,
		PublicKey:        pub,
		Name:             "laptop " + id.Short(),
		Platform:         "linux/amd64",
		CSR:              []byte("csr for " + id.String()),
		VerificationCode: "12 34 56",
		GrantKey:         []byte("GRANTKEY-" + id.Short()),
		ExpiresAt:        t0.Add(10 * time.Minute),
	}
}

// pair runs a code through BeginAttempt and CompletePairing for r.
func pair(t testing.TB, s *Store, autoApprove bool, r Request) (Code, Request) {
	t.Helper()
	ctx := context.Background()
	c := mustCreateCode(t, s, testCode(autoApprove))
	if _, err := s.BeginAttempt(ctx, c.Selector, t0); err != nil {
		t.Fatalf("BeginAttempt: %v", err)
	}
	got, err := s.CompletePairing(ctx, c.ID, r, t0)
	if err != nil {
		t.Fatalf("CompletePairing: %v", err)
	}
	return c, got
}

func testCert(id identity.DeviceID, serial string, notAfter time.Time) Certificate {
	return Certificate{
		Serial:    serial,
		DeviceID:  id,
		NotBefore: notAfter.Add(-24 * time.Hour),
		NotAfter:  notAfter,
		DER:       []byte("der " + serial),
	}
}

// pairedDevice pairs, approves and issues a fresh device.
func pairedDevice(t testing.TB, s *Store) (Device, Request) {
	t.Helper()
	_, r := pair(t, s, true, testRequest(t))
	d, err := s.IssueCertificate(context.Background(), r.ID, testCert(r.DeviceID, "serial-"+r.ID, t0.Add(24*time.Hour)), t0)
	if err != nil {
		t.Fatalf("IssueCertificate: %v", err)
	}
	return d, r
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// newCAPEM returns a real gateway CA in PEM.
func newCAPEM(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	ca, err := identity.NewCA(nil, "Palyra test gateway", t0)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err = ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(certPEM); b == nil {
		t.Fatal("no PEM")
	} else if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}
