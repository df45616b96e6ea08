// Package teststore puts into a real gateway store what the tests of the
// packages beside it need there, through the store's own steps.
package teststore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpki"
)

// Open opens a store on a fresh file (closed when t ends), with the
// clock at now and the given busy timeout (0: the default), and pairs n
// devices in it (PairDevice); it returns the store, its file and the
// devices.
func Open(t testing.TB, n int, busy time.Duration, now time.Time) (*store.Store, string, []identity.DeviceID) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.db")
	s, err := store.Open(context.Background(), path, store.Options{Now: func() time.Time { return now }, BusyTimeout: busy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ca := testpki.NewCA(t, "test gateway")
	ids := make([]identity.DeviceID, n)
	for i := range ids {
		ids[i] = PairDevice(t, s, ca, i, now)
	}
	return s, path, ids
}

// PairDevice pairs a new device of ca in s through the store's own steps
// (code, attempt, request, certificate), at now, and returns its ID. i
// tells the devices of one store apart (their codes' selectors): 0–99.
func PairDevice(t testing.TB, s *store.Store, ca *identity.CA, i int, now time.Time) identity.DeviceID {
	t.Helper()
	ctx := context.Background()
	d := testpki.NewDevice(t, ca)
	sel := fmt.Sprintf("%02d", i)
	if _, err := s.CreateCode(ctx, store.Code{Selector: sel, PINSecret: "secret" + sel, LinkSecret: []byte("link" + sel), AutoApprove: true,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c, err := s.BeginAttempt(ctx, sel, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.CompletePairing(ctx, c.ID, store.Request{DeviceID: d.ID(), PublicKey: d.Key.Public(), Name: "node " + sel,
		CSR: []byte("csr"), VerificationCode: "123 456", GrantKey: make([]byte, 32), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := d.Cert.Leaf
	if _, err := s.IssueCertificate(ctx, r.ID, store.Certificate{Serial: leaf.SerialNumber.String(), DeviceID: d.ID(),
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, DER: leaf.Raw}, now); err != nil {
		t.Fatal(err)
	}
	return d.ID()
}
