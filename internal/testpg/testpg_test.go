package testpg

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Each test gets a database of its own on the one server: what one
// writes, another does not see.
func TestDatabasesApart(t *testing.T) {
	ctx := context.Background()
	a, b := New(t), New(t)
	if a.Name == b.Name {
		t.Fatalf("two tests share database %s", a.Name)
	}
	ca, err := pgx.Connect(ctx, a.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var exists bool
	if err := cb.QueryRow(ctx, `SELECT to_regclass('t') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("a table made in one test's database is in another's")
	}
	var fsync string
	if err := ca.QueryRow(ctx, `SHOW fsync`).Scan(&fsync); err != nil || fsync != "off" {
		t.Fatalf("fsync = %q, %v; the test server runs with fsync off", fsync, err)
	}
}

// A test's database is dropped when it ends, and with it its role.
func TestDatabaseDropped(t *testing.T) {
	ctx := context.Background()
	var name, role string
	t.Run("uses", func(t *testing.T) {
		d := New(t)
		name = d.Name
		var roleURL string
		role, roleURL = d.Role(t, "pw'with quote")
		c, err := pgx.Connect(ctx, roleURL)
		if err != nil {
			t.Fatalf("logging in as the role with its password: %v", err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `CREATE TABLE mine (x int)`); err != nil {
			t.Fatalf("the role cannot create tables in its database: %v", err)
		}
		if _, err := pgx.Connect(ctx, d.URLFor(role, "wrong", d.Name)); err == nil {
			t.Fatal("the role logged in with a wrong password")
		}
	})
	srv, err := get()
	if err != nil {
		t.Fatal(err)
	}
	var dbs, roles int
	if err := srv.admin.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM pg_database WHERE datname = $1),
		(SELECT COUNT(*) FROM pg_roles WHERE rolname = $2)`, name, role).Scan(&dbs, &roles); err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || roles != 0 {
		t.Fatalf("after the test: %d databases named %s, %d roles named %s; want none", dbs, name, roles, role)
	}
}
