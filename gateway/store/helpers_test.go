package store

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpg"
)

// t0 is the tests' "now"; nothing here reads the wall clock.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func fixedClock() time.Time { return t0 }

func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }

// backend is a database a store can be in. The store's tests are one
// conformance suite: each runs on both backends (bothBackends), except
// those about SQLite itself (its file, pragmas, pool and locks).
type backend struct {
	name string
	// fresh returns where a new, empty store can be opened: a file path,
	// or the URL of a database of the test's own.
	fresh func(t testing.TB) string
	open  func(ctx context.Context, where string, opts Options) (*Store, error)
}

var (
	sqliteBackend = backend{
		name:  "sqlite",
		fresh: func(t testing.TB) string { return filepath.Join(t.TempDir(), "gateway.db") },
		open:  Open,
	}
	postgresBackend = backend{
		name:  "postgres",
		fresh: func(t testing.TB) string { return testpg.New(t).URL },
		open:  OpenPostgres,
	}
)

// bothBackends runs test on each backend, as parallel subtests named
// after them.
func bothBackends(t *testing.T, test func(t *testing.T, b backend)) {
	t.Parallel()
	for _, b := range []backend{sqliteBackend, postgresBackend} {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// openAt opens the store at where (a path or URL of b) with the tests'
// clock.
func (b backend) openAt(t testing.TB, where string) *Store {
	t.Helper()
	s, err := b.open(context.Background(), where, Options{Now: fixedClock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// openTest opens a new store, closed when t ends, and says where it is.
func (b backend) openTest(t testing.TB) (*Store, string) {
	t.Helper()
	where := b.fresh(t)
	s := b.openAt(t, where)
	t.Cleanup(func() { s.Close() })
	return s, where
}

// openAt and openTest are SQLite's, for the tests about SQLite.
func openAt(t testing.TB, path string) *Store       { t.Helper(); return sqliteBackend.openAt(t, path) }
func openTest(t testing.TB) (s *Store, path string) { t.Helper(); return sqliteBackend.openTest(t) }

// hasRelation reports whether the store has a table or index named name.
func hasRelation(t testing.TB, s *Store, name string) bool {
	t.Helper()
	q := `SELECT COUNT(*) FROM sqlite_master WHERE name = ?`
	if s.dialect == postgresDialect {
		q = `SELECT COUNT(*) FROM pg_class WHERE relname = ?`
	}
	var n int
	if err := s.db.QueryRowContext(context.Background(), q, name).Scan(&n); err != nil {
		t.Fatalf("looking for %s: %v", name, err)
	}
	return n > 0
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
