package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

func TestOpenFreshAndReopen(t *testing.T) { bothBackends(t, testOpenFreshAndReopen) }

func testOpenFreshAndReopen(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, path := be.openTest(t)

	versions := func(s *Store) []int {
		t.Helper()
		rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var vs []int
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		return vs
	}
	first := versions(s)
	if len(first) != SchemaVersion() || SchemaVersion() < 1 {
		t.Fatalf("applied versions %v, want 1..%d", first, SchemaVersion())
	}
	for i, v := range first {
		if v != i+1 {
			t.Fatalf("applied versions %v, want 1..%d in order", first, SchemaVersion())
		}
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := be.openAt(t, path)
	defer s2.Close()
	if again := versions(s2); len(again) != len(first) {
		t.Fatalf("reopen applied versions %v, first open %v", again, first)
	}
}

// Every pooled SQLite connection carries the pragmas: the writer and
// several readers at once. Only the readers are query_only.
func TestOpenPragmas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openTest(t)
	conns := make([]*sql.Conn, 1+DefaultMaxReaders)
	for i := range conns {
		db := s.rdb
		if i == 0 {
			db = s.db
		}
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		var mode string
		var fk, syncMode, busy, readOnly int
		if err := c.QueryRowContext(ctx, `PRAGMA query_only`).Scan(&readOnly); err != nil {
			t.Fatal(err)
		}
		if want := boolInt(i > 0); readOnly != want {
			t.Errorf("conn %d: query_only=%d, want %d", i, readOnly, want)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&syncMode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || fk != 1 || syncMode != 2 || busy != int(DefaultBusyTimeout.Milliseconds()) {
			t.Errorf("conn %d: journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d", i, mode, fk, syncMode, busy)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestOpenFileMode(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Log("no Unix file modes on Windows")
		return
	}
	s, path := openTest(t)
	// Write something so the WAL exists.
	if err := s.Audit(context.Background(), AuditEvent{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), perm)
		}
	}
}

func TestOpenRefusesInsecureFile(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Log("no Unix file modes on Windows")
		return
	}
	tests := []struct {
		name   string
		suffix string // which file gets the mode
		mode   os.FileMode
	}{
		{"db 0644", "", 0o644},
		{"db 0640", "", 0o640},
		{"db 0606", "", 0o606},
		{"db 0660", "", 0o660},
		{"wal 0644", "-wal", 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "gateway.db")
			s := openAt(t, path)
			if err := s.Audit(context.Background(), AuditEvent{Kind: "test"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			target := path + tt.suffix
			if tt.suffix != "" {
				// Closing checkpoints and removes the WAL; recreate it.
				if err := os.WriteFile(target, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(target, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(context.Background(), path, Options{Now: fixedClock})
			if !errors.Is(err, ErrInsecureFile) {
				t.Fatalf("Open of a %04o file: %v, want ErrInsecureFile", tt.mode, err)
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("error %q does not say how to fix it", err)
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) { bothBackends(t, testOpenRefusesNewerSchema) }

func testOpenRefusesNewerSchema(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, path := be.openTest(t)
	future := SchemaVersion() + 1
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, '9999_future.sql', 0)`, future); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		_, err := be.open(ctx, path, Options{Now: fixedClock, SkipMigrations: skip})
		if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "upgrade palyra") {
			t.Fatalf("Open of a newer schema (SkipMigrations %t): %v, want ErrSchemaTooNew", skip, err)
		}
	}
}

// With SkipMigrations, Open migrates nothing and refuses a schema older
// than this program's, saying how to migrate; once migrated, it opens.
func TestSkipMigrations(t *testing.T) { bothBackends(t, testSkipMigrations) }

func testSkipMigrations(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	where, old := storeAtVersion(t, be, 2, "0003_audit_counts.sql")
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and it still is at version 2 the second time
		_, err := be.open(ctx, where, Options{Now: fixedClock, SkipMigrations: true})
		if !errors.Is(err, ErrSchemaTooOld) || !strings.Contains(err.Error(), "at version 2") ||
			!strings.Contains(err.Error(), "palyra gateway migrate") {
			t.Fatalf("Open of an old schema with SkipMigrations: %v, want ErrSchemaTooOld saying what to run", err)
		}
	}
	empty := be.fresh(t)
	if _, err := be.open(ctx, empty, Options{Now: fixedClock, SkipMigrations: true}); !errors.Is(err, ErrSchemaTooOld) ||
		!strings.Contains(err.Error(), "at version 0") {
		t.Fatalf("Open of an empty database with SkipMigrations: %v, want ErrSchemaTooOld", err)
	}
	be.openAt(t, where).Close() // migrates
	s, err := be.open(ctx, where, Options{Now: fixedClock, SkipMigrations: true})
	if err != nil {
		t.Fatalf("Open with SkipMigrations of a migrated database: %v", err)
	}
	defer s.Close()
	if _, err := s.ListAudit(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

func TestOpenBadPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, p := range []string{"", filepath.Join(dir, "a?b.db"), filepath.Join(dir, "missing", "x.db"), dir} {
		if s, err := Open(context.Background(), p, Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fs      fstest.MapFS
		want    []int
		wantErr string
	}{
		{"ordered", fstest.MapFS{"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A")}, []int{1, 2}, ""},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil, "expected version 2"},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.sql": file("B")}, nil, "expected version 2"},
		{"not from one", fstest.MapFS{"m/0002_b.sql": file("B")}, nil, "expected version 1"},
		{"bad name", fstest.MapFS{"m/0001_a.sql": file("A"), "m/2_b.sql": file("B")}, nil, "not named"},
		{"stray file", fstest.MapFS{"m/0001_a.sql": file("A"), "m/README": file("")}, nil, "not named"},
		{"empty", fstest.MapFS{"m": &fstest.MapFile{Mode: fs.ModeDir}}, nil, "no migrations"},
		{"missing dir", fstest.MapFS{}, nil, "reading migrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := loadMigrations(tt.fs, "m")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.version)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("versions %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("versions %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// A later migration runs on a database that has the earlier ones, in order,
// and a failing one leaves nothing behind.
func TestApplyMigrationsIncrementally(t *testing.T) {
	bothBackends(t, testApplyMigrationsIncrementally)
}

func testApplyMigrationsIncrementally(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	base, err := loadMigrations(migrationFiles, s.dialect.migrationsDir())
	if err != nil {
		t.Fatal(err)
	}
	n := len(base)
	extra := append(append([]migration{}, base...),
		migration{version: n + 1, name: "x1", sql: `CREATE TABLE extra1 (a INTEGER); INSERT INTO extra1 VALUES (1);`},
		migration{version: n + 2, name: "x2", sql: `CREATE TABLE extra2 (a INTEGER); INSERT INTO nosuchtable VALUES (1);`},
	)
	err = s.applyMigrations(ctx, extra, 0)
	if err == nil || !strings.Contains(err.Error(), "x2") {
		t.Fatalf("applying a broken migration: %v", err)
	}
	var cur int
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&cur); err != nil {
		t.Fatal(err)
	}
	if cur != n+1 {
		t.Fatalf("schema version %d after a failed migration, want %d", cur, n+1)
	}
	if hasRelation(t, s, "extra2") {
		t.Fatal("the failed migration left its table behind")
	}
}

func TestCA(t *testing.T) { bothBackends(t, testCA) }

func testCA(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, path := be.openTest(t)
	if _, _, err := s.LoadCA(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadCA on a fresh store: %v, want ErrNotFound", err)
	}
	certPEM, keyPEM := newCAPEM(t)
	if err := s.SaveCA(ctx, certPEM, []byte("not a key")); err == nil {
		t.Fatal("SaveCA accepted a broken key")
	}
	if err := s.SaveCA(ctx, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey := newCAPEM(t)
	wantErr(t, "second SaveCA", s.SaveCA(ctx, otherCert, otherKey), ErrIllegalTransition)
	s.Close()

	s = be.openAt(t, path)
	defer s.Close()
	c, k, err := s.LoadCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(c) != string(certPEM) || string(k) != string(keyPEM) {
		t.Fatal("LoadCA after reopen returned a different CA")
	}
}

func TestOpenOddPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "my data %20 dir", "gate way.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path)
	defer s.Close()
	if err := s.Audit(context.Background(), AuditEvent{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %q: %v", path, err)
	}
}
