package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// snapshot is everything readable from a store.
type snapshot struct {
	CACert, CAKey string
	Codes         []Code
	Requests      []Request
	Devices       []Device
	Revoked       []string
	Nodes         []Node
	Audit         []AuditEvent
}

func takeSnapshot(t *testing.T, s *Store) snapshot {
	t.Helper()
	ctx := context.Background()
	var snap snapshot
	c, k, err := s.LoadCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap.CACert, snap.CAKey = string(c), string(k)
	// Use a time before every expiry so that reading changes nothing.
	codes, err := s.ListCodes(ctx, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codes {
		full, err := s.GetCode(ctx, c.ID) // with secrets
		if err != nil {
			t.Fatal(err)
		}
		snap.Codes = append(snap.Codes, full)
	}
	if snap.Requests, err = s.ListRequests(ctx, true, t0); err != nil {
		t.Fatal(err)
	}
	if snap.Devices, err = s.ListDevices(ctx); err != nil {
		t.Fatal(err)
	}
	ids, err := s.RevokedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		snap.Revoked = append(snap.Revoked, id.String())
	}
	if snap.Nodes, err = s.ListNodes(ctx); err != nil {
		t.Fatal(err)
	}
	if snap.Audit, err = s.ListAudit(ctx, 0); err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestRestartKeepsEverything(t *testing.T) { bothBackends(t, testRestartKeepsEverything) }

func testRestartKeepsEverything(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, path := be.openTest(t)

	certPEM, keyPEM := newCAPEM(t)
	if err := s.SaveCA(ctx, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	open := mustCreateCode(t, s, testCode(false)) // stays open
	if _, err := s.BeginAttempt(ctx, open.Selector, t0); err != nil {
		t.Fatal(err)
	}
	_, pending := pair(t, s, false, testRequest(t))
	_, approved := pair(t, s, false, testRequest(t))
	if _, err := s.ApproveRequest(ctx, approved.ID, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	d, _ := pairedDevice(t, s)
	revoked, _ := pairedDevice(t, s)
	removed, _ := pairedDevice(t, s)
	if err := s.UpsertNode(ctx, Node{DeviceID: d.ID, Name: "node", Platform: "linux/arm64", Version: "0.1", LastSeen: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeDevice(ctx, revoked.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDevice(ctx, removed.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}

	before := takeSnapshot(t, s)
	if len(before.Codes) != 6 || len(before.Requests) != 5 || len(before.Devices) != 2 || len(before.Revoked) != 2 ||
		len(before.Nodes) != 1 || len(before.Audit) == 0 {
		t.Fatalf("unexpected fixture: %d codes, %d requests, %d devices, %d revoked, %d nodes, %d audit",
			len(before.Codes), len(before.Requests), len(before.Devices), len(before.Revoked), len(before.Nodes), len(before.Audit))
	}
	if before.Codes[0].PINSecret == "" {
		t.Fatal("fixture lacks the secrets of an open code")
	}
	for _, r := range before.Requests {
		if (r.ID == pending.ID || r.ID == approved.ID) && r.GrantKey == nil {
			t.Fatalf("fixture request %s (%s) lacks its grant key", r.ID, r.State)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := be.openAt(t, path)
	defer s2.Close()
	after := takeSnapshot(t, s2)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("after reopening:\n%+v\nbefore:\n%+v", after, before)
	}
	if after.Codes[0].ID != open.ID || after.Codes[0].FailedAttempts != 1 {
		t.Fatalf("open code after restart %+v", after.Codes[0])
	}
	got, err := s2.GetRequest(ctx, pending.ID)
	if err != nil || got.State != RequestPending {
		t.Fatalf("pending request after restart = %+v, %v", got, err)
	}
}
