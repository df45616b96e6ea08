// Package testsqlite does to a SQLite file what another process could, for
// the tests of code that must not wait for it: it holds the file's write
// lock from a connection of its own.
package testsqlite

import (
	"context"
	"database/sql"
	"testing"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// LockForWriting takes the write lock of the database at path (BEGIN
// IMMEDIATE on a connection of its own) and returns what releases it; the
// test's end releases it too. Readers go on (WAL); writers wait for it.
func LockForWriting(t testing.TB, path string) (release func()) {
	t.Helper()
	// Wait for the lock as the store does, if its owner is writing now.
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		db.Close()
		t.Fatalf("locking %s for writing: %v", path, err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Errorf("releasing the write lock of %s: %v", path, err)
		}
		conn.Close()
		db.Close()
	}
	t.Cleanup(release)
	return release
}
