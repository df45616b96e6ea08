package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

func TestAuditTrail(t *testing.T) { bothBackends(t, testAuditTrail) }

func testAuditTrail(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)

	var secrets []string // every secret the store was given
	addSecrets := func(c Code) {
		secrets = append(secrets, c.PINSecret, string(c.LinkSecret), hex.EncodeToString(c.LinkSecret))
	}
	newReq := func() Request {
		r := testRequest(t)
		secrets = append(secrets, string(r.GrantKey), hex.EncodeToString(r.GrantKey))
		return r
	}

	// A code that closes after its attempts.
	closed := testCode(false)
	addSecrets(closed)
	closed = mustCreateCode(t, s, closed)
	for range MaxFailedAttempts {
		if _, err := s.BeginAttempt(ctx, closed.Selector, t0); err != nil {
			t.Fatal(err)
		}
	}
	// A code that expires.
	exp := testCode(false)
	addSecrets(exp)
	exp = mustCreateCode(t, s, exp)
	if _, err := s.BeginAttempt(ctx, exp.Selector, exp.ExpiresAt); err == nil {
		t.Fatal("attempt after expiry began")
	}
	// Approve, issue, renew, revoke, remove; reject; expire.
	pairOne := func(auto bool) Request {
		c := testCode(auto)
		addSecrets(c)
		c = mustCreateCode(t, s, c)
		if _, err := s.BeginAttempt(ctx, c.Selector, t0); err != nil {
			t.Fatal(err)
		}
		r, err := s.CompletePairing(ctx, c.ID, newReq(), t0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	approved := pairOne(false)
	if _, err := s.ApproveRequest(ctx, approved.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IssueCertificate(ctx, approved.ID, testCert(approved.DeviceID, "s1", t0.Add(time.Hour)), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCertificate(ctx, testCert(approved.DeviceID, "s2", t0.Add(2*time.Hour)), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeDevice(ctx, approved.DeviceID, t0); err != nil {
		t.Fatal(err)
	}
	auto := pairOne(true)
	if _, err := s.IssueCertificate(ctx, auto.ID, testCert(auto.DeviceID, "s3", t0.Add(time.Hour)), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDevice(ctx, auto.DeviceID, t0); err != nil {
		t.Fatal(err)
	}
	rejected := pairOne(false)
	if _, err := s.RejectRequest(ctx, rejected.ID, t0); err != nil {
		t.Fatal(err)
	}
	expired := pairOne(false)
	if _, err := s.ApproveRequest(ctx, expired.ID, expired.ExpiresAt); err == nil {
		t.Fatal("approval after expiry succeeded")
	}
	// A revoked device tries to pair again.
	c := testCode(false)
	addSecrets(c)
	c = mustCreateCode(t, s, c)
	if _, err := s.BeginAttempt(ctx, c.Selector, t0); err != nil {
		t.Fatal(err)
	}
	again := newReq()
	again.DeviceID, again.PublicKey = approved.DeviceID, approved.PublicKey
	if _, err := s.CompletePairing(ctx, c.ID, again, t0); err == nil {
		t.Fatal("revoked device paired")
	}
	// Events written by a caller.
	if err := s.Audit(ctx, AuditEvent{Kind: AuditPairingFailed, Detail: "key confirmation failed"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Audit(ctx, AuditEvent{}); err == nil {
		t.Fatal("Audit accepted an event without a kind")
	}

	events, err := s.ListAudit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	byRequest := map[string][]string{}
	for i, e := range events {
		count[e.Kind]++
		if e.RequestID != "" {
			byRequest[e.RequestID] = append(byRequest[e.RequestID], e.Kind)
		}
		if i > 0 && e.ID >= events[i-1].ID {
			t.Fatalf("ListAudit not newest first: %d after %d", e.ID, events[i-1].ID)
		}
		if e.At.IsZero() {
			t.Errorf("event %d has no time", e.ID)
		}
		text := fmt.Sprintf("%s %s %s %s", e.Kind, e.DeviceID, e.RequestID, e.Detail)
		for _, secret := range secrets {
			if secret != "" && strings.Contains(strings.ToLower(text), strings.ToLower(secret)) {
				t.Errorf("audit event %d contains a secret: %q", e.ID, text)
			}
		}
	}
	want := map[string]int{
		AuditCodeCreated:        7,
		AuditCodeClosed:         1,
		AuditCodeExpired:        1,
		AuditPairingAttempt:     MaxFailedAttempts + 5,
		AuditPairingCompleted:   4,
		AuditPairingRevoked:     1,
		AuditRequestApproved:    2, // one by an admin, one automatic
		AuditRequestRejected:    1,
		AuditRequestExpired:     1,
		AuditCertificateIssued:  2,
		AuditCertificateRenewed: 1,
		AuditDeviceRevoked:      1,
		AuditDeviceRemoved:      1,
		AuditPairingFailed:      1,
	}
	for kind, n := range want {
		if count[kind] != n {
			t.Errorf("%d %s events, want %d", count[kind], kind, n)
		}
	}
	if len(count) != len(want) {
		t.Errorf("event kinds %v, want %v", count, want)
	}
	if got := strings.Join(byRequest[approved.ID], ","); got != "certificate.issued,request.approved,pairing.completed" {
		t.Errorf("events of the approved request (newest first): %s", got)
	}
	if last, err := s.ListAudit(ctx, 2); err != nil || len(last) != 2 || last[0].ID != events[0].ID {
		t.Fatalf("ListAudit(2) = %+v, %v", last, err)
	}

	// Nothing secret anywhere in the audit table, whatever column.
	var dump strings.Builder
	rows, err := s.db.QueryContext(ctx, `SELECT kind || ' ' || device_id || ' ' || request_id || ' ' || detail || ' ' || source FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		dump.WriteString(line + "\n")
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, secret := range secrets {
		if strings.Contains(strings.ToLower(dump.String()), strings.ToLower(secret)) {
			t.Errorf("audit table contains secret %q", secret)
		}
	}
}

// Aggregated rows add up per kind, source, device, request and minute; rows
// one by one stay one by one.
func TestAuditCounts(t *testing.T) { bothBackends(t, testAuditCounts) }

func testAuditCounts(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	count := func(at time.Time, source string, n int) AuditEvent {
		return AuditEvent{At: at, Kind: AuditPairingAttemptRefused, Source: source, Count: n, Aggregated: true, Detail: source}
	}
	if err := s.AuditBatch(ctx, []AuditEvent{
		count(t0, "192.0.2.1", 5),
		count(t0.Add(10*time.Second), "192.0.2.1", 7), // same minute
		count(t0.Add(time.Minute), "192.0.2.1", 1),    // the next
		count(t0, "192.0.2.2", 2),
		{At: t0, Kind: AuditPairingFailed, Detail: "one"},
		{At: t0, Kind: AuditPairingFailed, Detail: "two"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AuditBatch(ctx, []AuditEvent{count(t0.Add(30*time.Second), "192.0.2.1", 100)}); err != nil {
		t.Fatal(err)
	}
	events, err := s.ListAudit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range events {
		got[fmt.Sprintf("%s %s %s", e.Kind, e.Source, e.At.Format("15:04:05"))] += e.Count
		if e.Aggregated != (e.Kind == AuditPairingAttemptRefused) {
			t.Errorf("row %+v", e)
		}
	}
	want := map[string]int{
		"pairing.attempt_refused 192.0.2.1 05:06:00": 112,
		"pairing.attempt_refused 192.0.2.1 05:07:00": 1,
		"pairing.attempt_refused 192.0.2.2 05:06:00": 2,
		"pairing.failed  05:06:07":                   2,
	}
	if len(events) != 5 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d rows: %v, want 5: %v", len(events), got, want)
	}
}

// PruneAudit deletes what is older than the cutoff, in batches, keeps the
// rest, and leaves a row saying what it did.
func TestPruneAudit(t *testing.T) { bothBackends(t, testPruneAudit) }

func testPruneAudit(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	old := make([]AuditEvent, pruneBatch+5)
	for i := range old {
		old[i] = AuditEvent{At: t0.Add(-100 * 24 * time.Hour).Add(time.Duration(i)), Kind: AuditPairingFailed, Detail: "old"}
	}
	if err := s.AuditBatch(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := s.AuditBatch(ctx, []AuditEvent{{At: t0.Add(-89 * 24 * time.Hour), Kind: AuditPairingFailed, Detail: "recent"}}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneAudit(ctx, t0.Add(-90*24*time.Hour), t0)
	if err != nil || n != len(old) {
		t.Fatalf("PruneAudit = %d, %v; want %d", n, err, len(old))
	}
	events, err := s.ListAudit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Kind != AuditPruned || events[1].Detail != "recent" ||
		events[0].Detail != fmt.Sprintf("deleted %d rows older than 2025-12-04T05:06:07Z", len(old)) {
		t.Fatalf("after pruning: %+v", events)
	}
	if n, err := s.PruneAudit(ctx, t0.Add(-90*24*time.Hour), t0); err != nil || n != 0 {
		t.Fatalf("pruning again = %d, %v", n, err)
	}
	if again, _ := s.ListAudit(ctx, 0); len(again) != 2 {
		t.Fatalf("pruning nothing wrote a row: %+v", again)
	}
}

// A batch of more plain rows than one insert statement takes, with an
// aggregated row among them, is written whole, in its order, each row
// with its own fields.
func TestAuditBatchRows(t *testing.T) { bothBackends(t, testAuditBatchRows) }

func testAuditBatchRows(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	n := 2*auditRowsPerInsert + 7
	var batch []AuditEvent
	for i := range n {
		if i == auditRowsPerInsert+3 {
			batch = append(batch, AuditEvent{At: t0, Kind: AuditPairingAttemptRefused, Source: "192.0.2.9", Count: 4, Aggregated: true, Detail: "among"})
		}
		var dev identity.DeviceID
		dev[0], dev[1] = byte(i), byte(i>>8)
		batch = append(batch, AuditEvent{At: t0.Add(time.Duration(i) * time.Millisecond), Kind: "invocation.completed",
			DeviceID: dev, RequestID: fmt.Sprintf("req-%04d", i), Detail: fmt.Sprintf("detail %d", i)})
	}
	if err := s.AuditBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAudit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(batch) {
		t.Fatalf("%d rows written of %d", len(got), len(batch))
	}
	slices.Reverse(got) // oldest first, as written
	for i, want := range batch {
		g := got[i]
		if want.Aggregated {
			if !g.Aggregated || g.Count != 4 || g.Source != "192.0.2.9" || g.Detail != "among" {
				t.Errorf("row %d: %+v, want the aggregated one", i, g)
			}
			continue
		}
		if g.Aggregated || g.Kind != want.Kind || g.DeviceID != want.DeviceID || g.RequestID != want.RequestID ||
			g.Detail != want.Detail || !g.At.Equal(want.At) || g.Count != 1 {
			t.Errorf("row %d: %+v, want %+v", i, g, want)
		}
	}
}
