package store

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/palyra/palyra-go/internal/testpg"
)

// Each way of failing to reach the database gives one line that says
// which it was, and none repeats the URL's password.
func TestPostgresOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testpg.New(t)
	role, _ := d.Role(t, "the-right-one")
	// A closed port on loopback: listen, note it, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	const secret = "s3cr3t-Pa55word"
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"not a URL", "postgres://u:" + secret + "@host:port/db", "the database URL is not valid"},
		{"other scheme", "mysql://u:" + secret + "@localhost/db", "must start with postgres://"},
		{"no database", "postgres://u:" + secret + "@localhost", "names no database"},
		{"bad parameter", "postgres://u:" + secret + "@localhost/db?sslmode=sometimes", "the database URL is not valid"},
		{"server down (socket)", "postgres://u:" + secret + "@/db?host=" + t.TempDir(), "cannot reach the PostgreSQL server's socket"},
		{"server down (TCP)", "postgres://u:" + secret + "@127.0.0.1:" + strconv.Itoa(closedPort) + "/db?sslmode=disable&connect_timeout=5",
			"cannot reach the PostgreSQL server at 127.0.0.1:" + strconv.Itoa(closedPort) + ": connect: connection refused"},
		{"wrong password", d.URLFor(role, secret, d.Name), "refused the login: password authentication failed for user"},
		{"missing database", d.URLFor(role, "the-right-one", "nosuchdb"), `database "nosuchdb" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := OpenPostgres(ctx, tt.url, Options{Now: fixedClock})
			if err == nil {
				s.Close()
				t.Fatal("OpenPostgres succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error shows the password: %q", msg)
			}
		})
	}
}

// A store opened as a role with a password works like the superuser's,
// and the description of its URL has no password.
func TestPostgresWithPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testpg.New(t)
	_, roleURL := d.Role(t, "pw-of-the-role")
	s, err := OpenPostgres(ctx, roleURL, Options{Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pairedDevice(t, s)
	if desc := DescribeDatabase(roleURL); strings.Contains(desc, "pw-of-the-role") || !strings.Contains(desc, d.Name) {
		t.Fatalf("DescribeDatabase(%q) = %q", roleURL, desc)
	}
}

func TestDescribeDatabase(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://palyra:hunter2@db.example:6543/gw?sslmode=require": "postgres://palyra@db.example:6543/gw",
		"postgresql://palyra:hunter2@db.example/gw?password=other":     "postgres://palyra@db.example:5432/gw",
		"postgres://palyra@/gw?host=/run/postgresql":                   "postgres://palyra@/gw?host=/run/postgresql",
		"postgres://u:hunter2@host:port/db":                            "(a database URL that is not valid)",
	} {
		if got := DescribeDatabase(in); got != want {
			t.Errorf("DescribeDatabase(%q) = %q, want %q", in, got, want)
		}
	}
}

// Gateways that start at once on a new database migrate it once, one
// after the other; one that waits too long for another's migration says
// so.
func TestPostgresMigrationLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testpg.New(t)
	const gateways = 4
	var wg sync.WaitGroup
	errs := make([]error, gateways)
	stores := make([]*Store, gateways)
	start := make(chan struct{})
	for i := range gateways {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = OpenPostgres(ctx, d.URL, Options{Now: fixedClock})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("gateway %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var rows int
	if err := stores[0].db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != SchemaVersion() {
		t.Fatalf("%d migration rows (%v), want %d", rows, err, SchemaVersion())
	}

	// Another gateway migrating (holding the lock) makes Open wait, and
	// give up after its timeout with a message saying why.
	holder, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLockKey)); err != nil {
		t.Fatal(err)
	}
	_, err = OpenPostgres(ctx, d.URL, Options{Now: fixedClock, MigrationLockTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "another gateway has been migrating this database") {
		t.Fatalf("Open while another gateway migrates: %v", err)
	}
	// Operators who migrate separately do not wait for the lock.
	s, err := OpenPostgres(ctx, d.URL, Options{Now: fixedClock, SkipMigrations: true})
	if err != nil {
		t.Fatalf("Open with SkipMigrations while the lock is held: %v", err)
	}
	s.Close()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(migrationLockKey)); err != nil {
		t.Fatal(err)
	}
	s, err = OpenPostgres(ctx, d.URL, Options{Now: fixedClock, MigrationLockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Open once the lock is free: %v", err)
	}
	s.Close()
}

// Both backends have the same migrations, by version and name: a version
// is one schema whichever database holds it.
func TestMigrationsOfBothBackends(t *testing.T) {
	t.Parallel()
	lite, err := loadMigrations(migrationFiles, sqliteDialect.migrationsDir())
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations(migrationFiles, postgresDialect.migrationsDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL ones", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d is %s on SQLite, %s on PostgreSQL", i+1, lite[i].name, pg[i].name)
		}
	}
}

func TestRebind(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`SELECT 1`:                              `SELECT 1`,
		`UPDATE t SET a = ?, b = ? WHERE c = ?`: `UPDATE t SET a = $1, b = $2 WHERE c = $3`,
		`SELECT '?', "a?b", ? FROM t WHERE x = 'it''s?' AND y = ?`: `SELECT '?', "a?b", $1 FROM t WHERE x = 'it''s?' AND y = $2`,
		`?2, ?, ?1, ?`:       `$2, $3, $1, $4`,
		`(? = '' OR id = ?)`: `($1 = '' OR id = $2)`,
	} {
		if got := postgresDialect.rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
		if got := sqliteDialect.rebind(in); got != in {
			t.Errorf("SQLite's rebind changed %q to %q", in, got)
		}
	}
}

// FuzzRebind: rebind changes placeholders only: without them (a ? or $
// and the digits after it), its output is its input, and it adds none.
func FuzzRebind(f *testing.F) {
	f.Add(`SELECT '?', ? FROM t WHERE x = 'it''s' AND y = ?`)
	f.Add(`"?"?'`)
	f.Add(`?2, ?, ?1`)
	placeholders := regexp.MustCompile(`[?$][0-9]*`)
	f.Fuzz(func(t *testing.T, q string) {
		q = strings.ReplaceAll(q, "$", "")
		got := postgresDialect.rebind(q)
		if placeholders.ReplaceAllString(got, "") != placeholders.ReplaceAllString(q, "") {
			t.Fatalf("rebind(%q) = %q changes more than placeholders", q, got)
		}
		if strings.Count(got, "$") > strings.Count(q, "?") {
			t.Fatalf("rebind(%q) = %q adds placeholders", q, got)
		}
	})
}
