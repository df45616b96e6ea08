package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/palyra/palyra-go/identity"
)

// Sentinel errors. Callers test them with errors.Is; every returned error
// also says what was being done.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCodeNotOpen means there is no open pairing code for the selector or
	// ID: unknown, used, expired and closed codes all give this one error,
	// so a caller cannot reveal which.
	ErrCodeNotOpen = errors.New("pairing code not open")
	// ErrSelectorInUse means an open, unexpired code already has the
	// selector.
	ErrSelectorInUse = errors.New("selector in use by an open pairing code")
	// ErrIllegalTransition means the state machine does not allow the change
	// from the row's current state.
	ErrIllegalTransition = errors.New("illegal state transition")
	// ErrRequestExpired means the pairing request expired before it was
	// decided; the store has marked it expired.
	ErrRequestExpired = errors.New("pairing request expired")
	// ErrDeviceRevoked means the device is revoked (or was removed, which
	// revokes it).
	ErrDeviceRevoked = errors.New("device revoked")
	// ErrDuplicate means a row with the same key already exists (for
	// example an invocation's request ID).
	ErrDuplicate = errors.New("duplicate")
	// ErrSchemaTooNew means the database was written by a newer program.
	ErrSchemaTooNew = errors.New("database schema is newer than this program supports")
	// ErrSchemaTooOld means the database needs migrations this program
	// was told not to run (Options.SkipMigrations).
	ErrSchemaTooOld = errors.New("database schema is older than this program needs")
	// ErrInsecureFile means the database file can be read or written by
	// users other than its owner.
	ErrInsecureFile = errors.New("database file is accessible to other users")
)

// DefaultBusyTimeout is how long a statement waits for another process's
// write lock before failing.
const DefaultBusyTimeout = 5 * time.Second

// DefaultMaxReaders is how many connections read at once. SQLite in WAL
// mode has one writer at a time and readers beside it; each connection
// holds open files (the database and its WAL) and a page cache, so the
// pool is bounded whatever the load: callers past the bound wait for a
// connection (within their context), not for a new one.
const DefaultMaxReaders = 4

// DefaultMigrationLockTimeout is how long Open waits for another gateway
// that is migrating the same PostgreSQL database.
const DefaultMigrationLockTimeout = time.Minute

// Options configures Open and OpenPostgres.
type Options struct {
	// Now is the clock for the few records that carry no caller-given time
	// (migration records, the CA's created_at, audit events without At).
	// nil means time.Now. Methods that depend on time take a now parameter.
	Now func() time.Time
	// BusyTimeout bounds waiting for another process's lock (SQLite);
	// zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxReaders bounds the connections that only read; zero means
	// DefaultMaxReaders. On PostgreSQL the pool holds MaxReaders + 1
	// connections, the one more for this process's writes.
	MaxReaders int
	// SkipMigrations leaves the schema as it is, for operators who migrate
	// separately (palyra gateway migrate): Open then refuses a schema
	// older than this program's with ErrSchemaTooOld, as it refuses a
	// newer one with ErrSchemaTooNew.
	SkipMigrations bool
	// MigrationLockTimeout bounds waiting for another gateway that is
	// migrating the same PostgreSQL database; zero means
	// DefaultMigrationLockTimeout.
	MigrationLockTimeout time.Duration

	// migrations, if not nil, replace the embedded ones (tests make
	// databases as older programs left them).
	migrations []migration
}

// Store is the gateway's state. It is safe for concurrent use.
type Store struct {
	// db is the pool that writes (and runs migrations). On SQLite it is
	// one connection, on which every transaction begins IMMEDIATE.
	db *db
	// rdb holds the connections that only read: on SQLite query_only
	// ones beside the writer; on PostgreSQL the same pool as db.
	rdb *db
	// ldb is what the operator's listings read on (ListNodes,
	// ListDevices, ListInvocations, ListAudit): on SQLite one query_only
	// connection of their own, so that a listing does not queue behind a
	// storm of handshakes' device lookups for the readers (an admin
	// ListNodes once waited 1.3 s there with 2,000 nodes reconnecting),
	// nor holds a reader they need while it reads every row; on
	// PostgreSQL the same pool as db.
	ldb *db
	// prepared holds the queries of a registration (upsertNodeTx)
	// prepared on db, by query text, for the write transactions to run
	// (txn); SQLite only, where parsing them anew was 70 % of what a
	// registration cost (BenchmarkUpsertNodes): pgx keeps its own cache
	// of prepared statements, which also copes with another gateway's
	// migration changing a table under them. rdb.prepared, likewise,
	// holds GetDevice's lookup, which every node handshake runs and whose
	// parsing was most of its cost (on both backends), and on SQLite the
	// dispatcher's look for a node's pending invocations, which every
	// registration runs too (BenchmarkPendingInvocations).
	prepared map[string]*sql.Stmt
	// pool is the pgx pool under db on PostgreSQL; nil on SQLite.
	pool    *pgxpool.Pool
	dialect dialect
	now     func() time.Time

	// writeMu serializes this process's write transactions, so they queue
	// here rather than in SQLite's busy handler, and so that on
	// PostgreSQL at most one transaction per gateway takes part in a
	// conflict, which keeps the retries of update few and bounded.
	writeMu sync.Mutex
	// commits counts the write transactions committed (Commits).
	commits atomic.Uint64
	// retries counts the transactions run again after a conflict.
	retries atomic.Uint64
	// nodesListed is how many nodes the last ListNodes returned: the next
	// one's capacity, so that a listing of 10,000 does not copy its rows
	// a dozen times while it grows.
	nodesListed atomic.Int64
}

// Commits is how many write transactions this Store has committed since
// Open, each one sync to disk: for metrics, and for tests of batching.
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Backend names the database the store is in: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.dialect.String() }

// Open opens (creating if needed) the SQLite database at path and brings
// its schema up to date (unless opts.SkipMigrations).
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	s, err := open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("opening gateway store %s: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("no path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, errors.New("path must not contain '?' or '#'")
	}
	if err := prepareFile(abs); err != nil {
		return nil, err
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	readers := opts.MaxReaders
	if readers <= 0 {
		readers = DefaultMaxReaders
	}
	// Pragmas in the DSN apply to every connection of a pool.
	common := fmt.Sprintf("%s?_busy_timeout=%d&_foreign_keys=on&_journal_mode=WAL&_synchronous=FULL", abs, busy.Milliseconds())
	wdb, err := sql.Open("sqlite", common+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	// One writer: this process's writes queue on writeMu anyway, and a
	// second writing connection would only wait in SQLite's busy handler.
	// It is kept open, so its files and cache are not made again for
	// every write.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	rdb, err := sql.Open("sqlite", common+"&_query_only=1")
	if err != nil {
		wdb.Close()
		return nil, err
	}
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	ldb, err := sql.Open("sqlite", common+"&_query_only=1")
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, err
	}
	ldb.SetMaxOpenConns(1)
	ldb.SetMaxIdleConns(1)
	s := &Store{db: &db{wdb, sqliteDialect, nil}, rdb: &db{rdb, sqliteDialect, nil}, ldb: &db{ldb, sqliteDialect, nil}, dialect: sqliteDialect, now: clock(opts)}
	if err := s.checkPragmas(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.prepareSchema(ctx, opts); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.prepareStatements(ctx, opts); err != nil {
		s.closeDBs()
		return nil, err
	}
	// SQLite gives the -wal and -shm files the database file's mode; check
	// anyway, since they carry the same data.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := checkMode(abs + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.closeDBs()
			return nil, err
		}
	}
	return s, nil
}

func clock(opts Options) func() time.Time {
	if opts.Now == nil {
		return time.Now
	}
	return opts.Now
}

// prepareSchema migrates, or with opts.SkipMigrations checks that the
// schema is this program's.
func (s *Store) prepareSchema(ctx context.Context, opts Options) error {
	ms := opts.migrations
	if ms == nil {
		var err error
		if ms, err = loadMigrations(migrationFiles, s.dialect.migrationsDir()); err != nil {
			return err
		}
	}
	if opts.SkipMigrations {
		return s.checkSchema(ctx, ms)
	}
	return s.applyMigrations(ctx, ms, opts.MigrationLockTimeout)
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("closing gateway store: %w", err)
	}
	return nil
}

// prepareStatements prepares the queries run often enough that parsing
// them is a cost, once the schema they read is there.
func (s *Store) prepareStatements(ctx context.Context, opts Options) error {
	var err error
	readers := []string{deviceByID}
	// A store at an older program's version (tests make them) may lack
	// the other queries' tables; they run unprepared there.
	if s.dialect == sqliteDialect && opts.migrations == nil {
		if s.prepared, err = prepareAll(ctx, s.db, isRevokedQuery, deviceByID, upsertNodeQuery); err != nil {
			return fmt.Errorf("preparing the registration's queries: %w", err)
		}
		readers = append(readers, pendingInvocationsQuery)
	}
	if s.rdb.prepared, err = prepareAll(ctx, s.rdb, readers...); err != nil {
		return fmt.Errorf("preparing the device lookup and the look for pending invocations: %w", err)
	}
	return nil
}

// prepareAll prepares queries on pool, by query text.
func prepareAll(ctx context.Context, pool *db, queries ...string) (map[string]*sql.Stmt, error) {
	out := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := pool.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range out {
				_ = st.Close()
			}
			return nil, err
		}
		out[q] = st
	}
	return out, nil
}

// closeDBs closes the prepared statements, the pools (readers first) and
// the pgx pool under them.
func (s *Store) closeDBs() error {
	var err error
	for _, st := range s.prepared {
		err = errors.Join(err, st.Close())
	}
	for _, st := range s.rdb.prepared {
		err = errors.Join(err, st.Close())
	}
	if s.ldb != nil && s.ldb != s.db {
		err = errors.Join(err, s.ldb.Close())
	}
	if s.rdb != nil && s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	err = errors.Join(err, s.db.Close())
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// prepareFile creates the database file with mode 0600, or checks that an
// existing one is private to its owner.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := checkMode(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// checkMode refuses a file that is not a regular file or that others may
// access. Windows has no Unix modes; there the data directory's ACL is what
// protects the file.
func checkMode(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, but it holds the gateway CA key; run chmod 600 %s",
			ErrInsecureFile, path, perm, path)
	}
	return nil
}

// checkPragmas verifies that the connection settings took effect: a driver
// that silently ignored them would lose durability or integrity.
func (s *Store) checkPragmas(ctx context.Context) error {
	if err := checkPragmasOf(ctx, s.db.DB); err != nil {
		return err
	}
	for _, r := range []*db{s.rdb, s.ldb} {
		if err := checkPragmasOf(ctx, r.DB); err != nil {
			return fmt.Errorf("reading connection: %w", err)
		}
		var readOnly int
		if err := r.QueryRowContext(ctx, "PRAGMA query_only").Scan(&readOnly); err != nil || readOnly != 1 {
			return fmt.Errorf("sqlite settings not applied (query_only=%d on a reading connection): %v", readOnly, err)
		}
	}
	return nil
}

func checkPragmasOf(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var mode string
	var fk, sync int
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("reading journal_mode: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("reading foreign_keys: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("reading synchronous: %w", err)
	}
	if !strings.EqualFold(mode, "wal") || fk != 1 || sync != 2 {
		return fmt.Errorf("sqlite settings not applied (journal_mode=%s foreign_keys=%d synchronous=%d)", mode, fk, sync)
	}
	return nil
}

// commitThen is returned by a transaction body that wants its changes
// committed and err returned anyway: for example, a request found expired
// while approving it is marked expired, and the caller gets
// ErrRequestExpired.
type commitThen struct{ err error }

func (c commitThen) Error() string { return c.err.Error() }
func (c commitThen) Unwrap() error { return c.err }

// maxTxAttempts bounds how often update runs a transaction that keeps
// losing races with other gateways' (PostgreSQL only).
const maxTxAttempts = 12

// update runs fn in one write transaction. It commits when fn returns nil or
// a commitThen, and rolls back otherwise. On PostgreSQL a transaction that
// failed for a concurrent one's sake (a serialization failure, a deadlock)
// is run again, up to maxTxAttempts times with a growing random pause: fn
// must set what it returns afresh each time it runs.
func (s *Store) update(ctx context.Context, fn func(tx *txn) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	for attempt := 1; ; attempt++ {
		err := s.updateOnce(ctx, fn)
		if !s.dialect.retryable(err) {
			return err
		}
		if attempt == maxTxAttempts {
			return fmt.Errorf("giving up after %d attempts, each in conflict with another transaction: %w", attempt, err)
		}
		s.retries.Add(1)
		if err := pause(ctx, retryPause(attempt)); err != nil {
			return err
		}
	}
}

func (s *Store) updateOnce(ctx context.Context, fn func(tx *txn) error) error {
	sqlTx, err := s.db.BeginTx(ctx, s.dialect.txOptions())
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	tx := &txn{sqlTx, s.dialect, s.prepared}
	err = fn(tx)
	var keep commitThen
	if err != nil && !errors.As(err, &keep) {
		_ = tx.Rollback()
		return err
	}
	if cerr := tx.Commit(); cerr != nil {
		return fmt.Errorf("committing: %w", cerr)
	}
	s.commits.Add(1)
	if err != nil {
		return keep.err
	}
	return nil
}

// retryPause is how long to wait before attempt+1: a random time up to
// 1 ms doubled per attempt, at most 100 ms, so that the transactions that
// collided do not collide again in step.
func retryPause(attempt int) time.Duration {
	ceiling := min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)
	return time.Duration(rand.Int64N(int64(ceiling))) + 1
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// querier is what both *db and *txn offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Times are stored as Unix nanoseconds, NULL for the zero time.

func dbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func goTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// Device IDs are stored in their canonical text form, '' for the zero ID.

func dbDeviceID(id identity.DeviceID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

func goDeviceID(s string) (identity.DeviceID, error) {
	if s == "" {
		return identity.DeviceID{}, nil
	}
	id, err := identity.ParseDeviceID(s)
	if err != nil {
		return id, fmt.Errorf("stored device ID %q: %w", s, err)
	}
	return id, nil
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
