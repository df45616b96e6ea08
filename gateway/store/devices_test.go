package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

func TestRevocation(t *testing.T) { bothBackends(t, testRevocation) }

func testRevocation(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	keep, _ := pairedDevice(t, s)

	if revoked, err := s.IsRevoked(ctx, d.ID); err != nil || revoked {
		t.Fatalf("IsRevoked before revoking = %t, %v", revoked, err)
	}
	when := t0.Add(time.Hour)
	got, err := s.RevokeDevice(ctx, d.ID, when)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.Equal(when) {
		t.Fatalf("revoked device %+v", got)
	}
	// Idempotent: the first revocation time stays.
	got, err = s.RevokeDevice(ctx, d.ID, when.Add(time.Hour))
	if err != nil || !got.RevokedAt.Equal(when) {
		t.Fatalf("second RevokeDevice = %+v, %v", got, err)
	}
	if revoked, err := s.IsRevoked(ctx, d.ID); err != nil || !revoked {
		t.Fatalf("IsRevoked after revoking = %t, %v", revoked, err)
	}
	stranger, _ := newDevice(t)
	_, err = s.RevokeDevice(ctx, stranger, when)
	wantErr(t, "revoking an unknown device", err, ErrNotFound)

	// A revoked device can neither renew, register a node, nor pair again.
	wantErr(t, "renewal of a revoked device", s.RecordCertificate(ctx, testCert(d.ID, "renew", t0.Add(48*time.Hour)), when), ErrDeviceRevoked)
	wantErr(t, "UpsertNode of a revoked device", s.UpsertNode(ctx, Node{DeviceID: d.ID, Name: "n"}), ErrDeviceRevoked)
	c := mustCreateCode(t, s, testCode(false))
	if _, err := s.BeginAttempt(ctx, c.Selector, t0); err != nil {
		t.Fatal(err)
	}
	r := testRequest(t)
	r.DeviceID, r.PublicKey = d.ID, d.PublicKey
	_, err = s.CompletePairing(ctx, c.ID, r, t0)
	wantErr(t, "pairing a revoked device", err, ErrDeviceRevoked)
	if code, _ := s.GetCode(ctx, c.ID); code.State != CodeOpen || code.FailedAttempts != 1 {
		t.Fatalf("code after a revoked device tried it: %+v", code)
	}

	// A paired device, revoked later.
	_, pend := pair(t, s, false, testRequest(t))
	if _, err := s.ApproveRequest(ctx, pend.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IssueCertificate(ctx, pend.ID, testCert(pend.DeviceID, "c1", t0.Add(time.Hour)), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeDevice(ctx, pend.DeviceID, t0); err != nil {
		t.Fatal(err)
	}
	// An approved request whose device was revoked before issuance.
	live := testRequest(t)
	_, lr := pair(t, s, false, live)
	if _, err := s.ApproveRequest(ctx, lr.ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := revokeForTest(ctx, s, lr.DeviceID); err != nil {
		t.Fatal(err)
	}
	_, err = s.IssueCertificate(ctx, lr.ID, testCert(lr.DeviceID, "c2", t0.Add(time.Hour)), t0)
	wantErr(t, "issuing to a revoked device", err, ErrDeviceRevoked)
	if got, _ := s.GetRequest(ctx, lr.ID); got.State != RequestApproved {
		t.Fatalf("request after refused issuance: %+v", got)
	}
	if _, err := s.GetDevice(ctx, lr.DeviceID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused issuance created the device: %v", err)
	}

	// RemoveDevice deletes the device and its node but keeps it revoked.
	if err := s.UpsertNode(ctx, Node{DeviceID: keep.ID, Name: "keep", LastSeen: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDevice(ctx, keep.ID, when); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "RemoveDevice twice", s.RemoveDevice(ctx, keep.ID, when), ErrNotFound)
	if _, err := s.GetDevice(ctx, keep.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetDevice after removal: %v", err)
	}
	if nodes, err := s.ListNodes(ctx); err != nil || len(nodes) != 0 {
		t.Fatalf("ListNodes after removal = %+v, %v", nodes, err)
	}
	if revoked, err := s.IsRevoked(ctx, keep.ID); err != nil || !revoked {
		t.Fatalf("IsRevoked after removal = %t, %v", revoked, err)
	}
	wantErr(t, "renewal of a removed device", s.RecordCertificate(ctx, testCert(keep.ID, "renew2", t0.Add(48*time.Hour)), when), ErrDeviceRevoked)

	ids, err := s.RevokedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []identity.DeviceID{d.ID, keep.ID, pend.DeviceID, lr.DeviceID} {
		if !slices.Contains(ids, want) {
			t.Errorf("RevokedDevices %v lacks %s", ids, want)
		}
	}
	if len(ids) != 4 {
		t.Errorf("RevokedDevices has %d IDs, want 4", len(ids))
	}
}

// revokeForTest revokes a device ID that has no device row yet.
func revokeForTest(ctx context.Context, s *Store, id identity.DeviceID) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO revocations (device_id, revoked_at, seq)
		VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM revocations))`, id.String(), t0.UnixNano())
	return err
}

func TestNodes(t *testing.T) { bothBackends(t, testNodes) }

func testNodes(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	stranger, _ := newDevice(t)

	wantErr(t, "UpsertNode of an unknown device", s.UpsertNode(ctx, Node{DeviceID: stranger, Name: "x"}), ErrNotFound)
	n := Node{DeviceID: d.ID, Name: "laptop", Platform: "darwin/arm64", Version: "1.0.0", LastSeen: t0}
	if err := s.UpsertNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.Version = "1.0.1"
	if err := s.UpsertNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchNodes(ctx, map[identity.DeviceID]time.Time{d.ID: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.LastSeen = t0.Add(time.Minute)
	if len(nodes) != 1 || nodes[0] != n {
		t.Fatalf("ListNodes = %+v, want [%+v]", nodes, n)
	}
}

// UpsertNodes records a batch of registrations in one transaction, each
// with its own outcome: a revoked or unknown device is refused alone, and
// the others in the batch are recorded; a store that cannot write records
// none.
func TestUpsertNodes(t *testing.T) { bothBackends(t, testUpsertNodes) }

func testUpsertNodes(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	fresh, _ := pairedDevice(t, s)
	known, _ := pairedDevice(t, s)
	revoked, _ := pairedDevice(t, s)
	stranger, _ := newDevice(t)
	for _, d := range []Device{known, revoked} {
		if err := s.UpsertNode(ctx, Node{DeviceID: d.ID, Name: "before", Version: "1.0", LastSeen: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RevokeDevice(ctx, revoked.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	at := t0.Add(time.Hour)
	batch := []Node{
		{DeviceID: fresh.ID, Name: "fresh", Platform: "linux/amd64", Version: "2.0", LastSeen: at},
		{DeviceID: revoked.ID, Name: "revoked", Version: "2.0", LastSeen: at},
		{DeviceID: stranger, Name: "stranger", Version: "2.0", LastSeen: at},
		{DeviceID: known.ID, Name: "known", Platform: "darwin/arm64", Version: "2.0", LastSeen: at},
	}
	before := s.Commits()
	outcomes, err := s.UpsertNodes(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - before; n != 1 {
		t.Errorf("UpsertNodes of %d nodes took %d commits, want 1", len(batch), n)
	}
	if len(outcomes) != len(batch) {
		t.Fatalf("UpsertNodes gave %d outcomes for %d nodes", len(outcomes), len(batch))
	}
	for _, i := range []int{0, 3} {
		if outcomes[i] != nil {
			t.Errorf("outcome of %s = %v, want nil", batch[i].Name, outcomes[i])
		}
	}
	wantErr(t, "UpsertNodes' outcome for a revoked device", outcomes[1], ErrDeviceRevoked)
	wantErr(t, "UpsertNodes' outcome for an unknown device", outcomes[2], ErrNotFound)
	for _, i := range []int{1, 2} {
		if !strings.Contains(outcomes[i].Error(), batch[i].DeviceID.String()) {
			t.Errorf("outcome %q does not name the device %s", outcomes[i], batch[i].DeviceID)
		}
	}

	nodes, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[identity.DeviceID]Node{}
	for _, n := range nodes {
		got[n.DeviceID] = n
	}
	want := map[identity.DeviceID]Node{
		fresh.ID:   batch[0],
		known.ID:   batch[3],
		revoked.ID: {DeviceID: revoked.ID, Name: "before", Version: "1.0", LastSeen: t0}, // untouched
	}
	if len(got) != len(want) {
		t.Errorf("ListNodes after the batch = %+v, want %+v", nodes, want)
	}
	for id, w := range want {
		if g := got[id]; g != w {
			t.Errorf("node %s after the batch = %+v, want %+v", id.Short(), g, w)
		}
	}

	// A store that cannot write (here: the caller gave up) records none
	// and gives no outcomes, only its error.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	before = s.Commits()
	outcomes, err = s.UpsertNodes(cancelled, []Node{{DeviceID: fresh.ID, Name: "late", LastSeen: at.Add(time.Hour)}})
	if err == nil || outcomes != nil {
		t.Errorf("UpsertNodes with a cancelled context = %v, %v; want no outcomes and an error", outcomes, err)
	}
	if n := s.Commits() - before; n != 0 {
		t.Errorf("a failed UpsertNodes committed %d transactions", n)
	}
	if outcomes, err := s.UpsertNodes(ctx, nil); outcomes != nil || err != nil || s.Commits() != before {
		t.Errorf("UpsertNodes of none = %v, %v, with %d commits; want nothing", outcomes, err, s.Commits()-before)
	}
	if nodes, err := s.ListNodes(ctx); err != nil || len(nodes) != 3 {
		t.Fatalf("ListNodes = %v, %v", nodes, err)
	} else {
		for _, n := range nodes {
			if n.Name == "late" {
				t.Errorf("a failed UpsertNodes recorded %+v", n)
			}
		}
	}
}

// TouchNodes writes many last-seen times in one transaction, never moves
// one back, and skips devices that never registered.
func TestTouchNodes(t *testing.T) { bothBackends(t, testTouchNodes) }

func testTouchNodes(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	a, _ := pairedDevice(t, s)
	b, _ := pairedDevice(t, s)
	stranger, _ := newDevice(t)
	for _, d := range []Device{a, b} {
		if err := s.UpsertNode(ctx, Node{DeviceID: d.ID, Name: d.ID.Short(), LastSeen: t0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Commits()
	err := s.TouchNodes(ctx, map[identity.DeviceID]time.Time{
		a.ID:     t0.Add(2 * time.Minute),
		b.ID:     t0, // older than its registration: kept at the registration's
		stranger: t0.Add(3 * time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - before; n != 1 {
		t.Errorf("TouchNodes of 3 nodes took %d commits, want 1", n)
	}
	if err := s.TouchNodes(ctx, nil); err != nil || s.Commits()-before != 1 {
		t.Errorf("TouchNodes of none: err %v, %d commits in all, want none more", err, s.Commits()-before)
	}
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[identity.DeviceID]time.Time{}
	for _, n := range nodes {
		got[n.DeviceID] = n.LastSeen
	}
	want := map[identity.DeviceID]time.Time{a.ID: t0.Add(2 * time.Minute), b.ID: t0.Add(time.Minute)}
	if len(got) != len(want) || !got[a.ID].Equal(want[a.ID]) || !got[b.ID].Equal(want[b.ID]) {
		t.Fatalf("last seen %v, want %v", got, want)
	}
}
