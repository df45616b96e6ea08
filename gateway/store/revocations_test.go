package store

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/palyra/palyra-go/identity"
)

func TestRevocationSequence(t *testing.T) { bothBackends(t, testRevocationSequence) }

// Each new revocation, by RevokeDevice or RemoveDevice, takes the next
// number; revoking again, or removing a revoked device, takes none; and
// RevocationsAfter reads from any point, in order, in pages.
func testRevocationSequence(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	if last, err := s.LastRevocation(ctx); err != nil || last != 0 {
		t.Fatalf("LastRevocation of a fresh store = %d, %v", last, err)
	}
	var want []identity.DeviceID
	for range 3 {
		d, _ := pairedDevice(t, s)
		if _, err := s.RevokeDevice(ctx, d.ID, t0); err != nil {
			t.Fatal(err)
		}
		want = append(want, d.ID)
	}
	if _, err := s.RevokeDevice(ctx, want[1], t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDevice(ctx, want[2], t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	removed, _ := pairedDevice(t, s)
	if err := s.RemoveDevice(ctx, removed.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	want = append(want, removed.ID)

	if last, err := s.LastRevocation(ctx); err != nil || last != int64(len(want)) {
		t.Fatalf("LastRevocation = %d, %v; want %d", last, err, len(want))
	}
	all, err := s.RevocationsAfter(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want) {
		t.Fatalf("RevocationsAfter(0) = %+v, want %d", all, len(want))
	}
	for i, r := range all {
		if r.Seq != int64(i+1) || r.DeviceID != want[i] {
			t.Errorf("revocation %d = %+v, want seq %d of %s", i, r, i+1, want[i])
		}
	}
	if !all[3].RevokedAt.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("the removed device's revocation is dated %v", all[3].RevokedAt)
	}
	page, err := s.RevocationsAfter(ctx, 1, 2)
	if err != nil || len(page) != 2 || page[0].Seq != 2 || page[1].Seq != 3 {
		t.Fatalf("RevocationsAfter(1, limit 2) = %+v, %v", page, err)
	}
	if rest, err := s.RevocationsAfter(ctx, 4, 100); err != nil || len(rest) != 0 {
		t.Fatalf("RevocationsAfter(last) = %+v, %v", rest, err)
	}
}

func TestRevocationSequenceMigration(t *testing.T) { bothBackends(t, testRevocationSequenceMigration) }

// Migration 0007 numbers the revocations a database already has in the
// order they were made.
func testRevocationSequenceMigration(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	where := be.fresh(t)
	di := sqliteDialect
	if be.name == postgresBackend.name {
		di = postgresDialect
	}
	ms, err := loadMigrations(migrationFiles, di.migrationsDir())
	if err != nil {
		t.Fatal(err)
	}
	old, err := be.open(ctx, where, Options{Now: fixedClock, migrations: ms[:6]})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]identity.DeviceID, 3)
	for i := range ids {
		ids[i], _ = newDevice(t)
	}
	// Inserted out of time order: the numbers follow revoked_at.
	for i, at := range []time.Duration{2 * time.Hour, 0, time.Hour} {
		if _, err := old.db.ExecContext(ctx, `INSERT INTO revocations (device_id, revoked_at) VALUES (?, ?)`,
			ids[i].String(), t0.Add(at).UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	s := be.openAt(t, where)
	defer s.Close()
	got, err := s.RevocationsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].DeviceID != ids[1] || got[1].DeviceID != ids[2] || got[2].DeviceID != ids[0] || got[2].Seq != 3 {
		t.Fatalf("revocations after migrating: %+v; want %s, %s, %s numbered 1 to 3", got, ids[1], ids[2], ids[0])
	}
	d, _ := pairedDevice(t, s)
	if _, err := s.RevokeDevice(ctx, d.ID, t0); err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastRevocation(ctx); err != nil || last != 4 {
		t.Fatalf("LastRevocation after one more = %d, %v", last, err)
	}
}

// listen opens a connection of its own to the database of url and
// listens on RevocationChannel there.
func listen(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	dial, err := Dialer(url, "test listener")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), "LISTEN "+RevocationChannel); err != nil {
		t.Fatal(err)
	}
	return conn
}

func nextNotification(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("waiting for a notification: %v", err)
	}
	return n.Payload
}

// A revocation is announced on RevocationChannel with its number, and only
// once its transaction commits: a notification sent from elsewhere while
// the revoking transaction is open arrives before it.
func TestRevocationNotifiedOnCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, url := postgresBackend.openTest(t)
	d, _ := pairedDevice(t, s)
	other, _ := pairedDevice(t, s)
	conn := listen(t, url)

	if _, err := s.RevokeDevice(ctx, d.ID, t0); err != nil {
		t.Fatal(err)
	}
	if got := nextNotification(t, conn); got != "1" {
		t.Fatalf("the first revocation's notification says %q, want 1", got)
	}

	err := s.update(ctx, func(tx *txn) error {
		if added, err := revokeTx(ctx, tx, other.ID, t0); err != nil || !added {
			t.Errorf("revokeTx = %t, %v", added, err)
		}
		// Committed while the revocation's transaction is still open.
		_, err := s.pool.Exec(ctx, `SELECT pg_notify($1, 'marker')`, RevocationChannel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if first, second := nextNotification(t, conn), nextNotification(t, conn); first != "marker" || second != "2" {
		t.Fatalf("notifications %q then %q; want marker, then 2 once the revocation committed", first, second)
	}
	// Revoking again announces nothing: the next one is the marker after.
	if _, err := s.RevokeDevice(ctx, d.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, 'after')`, RevocationChannel); err != nil {
		t.Fatal(err)
	}
	if got := nextNotification(t, conn); got != "after" {
		t.Fatalf("revoking a revoked device notified %q", got)
	}
}

// Gateways revoking at once on one database get distinct numbers with no
// gap: their transactions conflict on the highest number, and the one run
// again takes the next.
func TestConcurrentRevocationsNumberedInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first, url := postgresBackend.openTest(t)
	second := postgresBackend.openAt(t, url)
	defer second.Close()
	const each = 15
	var devices [2][]identity.DeviceID
	for i, s := range []*Store{first, second} {
		for range each {
			d, _ := pairedDevice(t, s)
			devices[i] = append(devices[i], d.ID)
		}
	}
	conn := listen(t, url)
	var wg sync.WaitGroup
	for i, s := range []*Store{first, second} {
		for _, id := range devices[i] {
			wg.Go(func() {
				if _, err := s.RevokeDevice(ctx, id, t0); err != nil {
					t.Errorf("revoking %s: %v", id, err)
				}
			})
		}
	}
	wg.Wait()
	all, err := first.RevocationsAfter(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2*each {
		t.Fatalf("%d revocations, want %d", len(all), 2*each)
	}
	seen := map[identity.DeviceID]bool{}
	for i, r := range all {
		if r.Seq != int64(i+1) {
			t.Fatalf("revocation %d has number %d: %+v", i, r.Seq, all)
		}
		seen[r.DeviceID] = true
	}
	if len(seen) != 2*each {
		t.Fatalf("%d devices among the revocations, want %d", len(seen), 2*each)
	}
	// Committed in number order, so announced in it.
	for i := range 2 * each {
		if got := nextNotification(t, conn); got != strconv.Itoa(i+1) {
			t.Fatalf("notification %d says %q", i, got)
		}
	}
}
