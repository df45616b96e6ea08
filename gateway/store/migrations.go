package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// loadMigrations reads the *.sql files in dir of fsys. Names are
// NNNN_description.sql; versions must run 1, 2, 3… without gaps or repeats.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_description.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return ms, nil
}

// migrationsDir is where the backend's migrations are: SQLite's at the
// top, PostgreSQL's beside them. Both have the same versions, each the
// same change in its own SQL, so that a version means one schema.
func (d dialect) migrationsDir() string {
	if d == postgresDialect {
		return "migrations/postgres"
	}
	return "migrations"
}

// SchemaVersion is the schema version this program writes.
func SchemaVersion() int {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrationLockKey names the PostgreSQL advisory lock that migrations run
// under ("palyra" in ASCII). Advisory locks are per database, so gateways
// of other databases on the same server do not wait for each other.
const migrationLockKey = 0x70616c797261

// createSchemaMigrations makes the table of applied migrations, in each
// dialect's types (SQLite's STRICT tables know no BIGINT; PostgreSQL's
// INTEGER has 32 bits, too few for a time in nanoseconds).
func (d dialect) createSchemaMigrations() string {
	if d == postgresDialect {
		return `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at BIGINT  NOT NULL
		)`
	}
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
}

// applyMigrations applies the pending migrations of ms in order, each in
// its own transaction together with its schema_migrations row. It refuses a
// database whose schema is newer than the newest migration of ms. On
// PostgreSQL it holds an advisory lock meanwhile (waiting up to
// lockTimeout for it), so that gateways starting at once migrate one after
// the other, the later ones finding nothing left to do; on SQLite each
// migration's BEGIN IMMEDIATE does that.
func (s *Store) applyMigrations(ctx context.Context, ms []migration, lockTimeout time.Duration) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer conn.Close()
	if s.dialect == postgresDialect {
		unlock, err := lockForMigrations(ctx, conn, lockTimeout)
		if err != nil {
			return err
		}
		defer unlock()
	}
	inTx := func(fn func(tx *txn) error) error {
		sqlTx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		tx := &txn{sqlTx, s.dialect, nil}
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	if err := inTx(func(tx *txn) error { _, err := tx.ExecContext(ctx, s.dialect.createSchemaMigrations()); return err }); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	latest := ms[len(ms)-1].version
	for _, m := range ms {
		err := inTx(func(tx *txn) error {
			// Read the version inside the transaction: another process may
			// have migrated since.
			cur, err := schemaVersionTx(ctx, tx, s.dialect)
			if err != nil {
				return err
			}
			if cur > latest {
				return schemaTooNew(cur, latest)
			}
			if cur >= m.version {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, s.now().UnixNano())
			return err
		})
		if errors.Is(err, ErrSchemaTooNew) {
			return err
		}
		if err != nil {
			return fmt.Errorf("applying migration %s: %w", m.name, err)
		}
	}
	return nil
}

// lockForMigrations takes the migration lock on conn, waiting at most
// timeout (zero: DefaultMigrationLockTimeout) for the gateway that holds
// it. The lock is the connection's: it goes when the connection does,
// also when the process dies mid-migration.
func lockForMigrations(ctx context.Context, conn *sql.Conn, timeout time.Duration) (unlock func(), err error) {
	if timeout <= 0 {
		timeout = DefaultMigrationLockTimeout
	}
	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := conn.ExecContext(wait, `SELECT pg_advisory_lock($1)`, int64(migrationLockKey)); err != nil {
		if wait.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("migrating: another gateway has been migrating this database for %v (it holds advisory lock %d); "+
				"wait for it, or stop it if it hangs", timeout, migrationLockKey)
		}
		return nil, fmt.Errorf("migrating: taking advisory lock %d: %w", migrationLockKey, err)
	}
	return func() {
		// Unlocking fails only with the connection, which then takes
		// the lock with it.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLockKey))
	}, nil
}

// checkSchema refuses a database whose schema is not the newest of ms,
// for Options.SkipMigrations.
func (s *Store) checkSchema(ctx context.Context, ms []migration) error {
	cur, err := schemaVersionTx(ctx, s.db, s.dialect)
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	switch {
	case cur > latest:
		return schemaTooNew(cur, latest)
	case cur < latest:
		return fmt.Errorf("%w: database is at version %d, this program needs version %d; "+
			"run palyra gateway migrate, or start the gateway without --no-migrate", ErrSchemaTooOld, cur, latest)
	}
	return nil
}

func schemaTooNew(cur, latest int) error {
	return fmt.Errorf("%w: database is at version %d, this program knows up to %d; upgrade palyra",
		ErrSchemaTooNew, cur, latest)
}

// schemaVersionTx is the newest migration applied, 0 when none is (or the
// database is empty).
func schemaVersionTx(ctx context.Context, q querier, d dialect) (int, error) {
	var one int
	err := q.QueryRowContext(ctx, d.tableExistsQuery(), "schema_migrations").Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	var cur int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return cur, nil
}
