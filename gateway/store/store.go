package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

// Options configures Open.
type Options struct {
	// Now is the clock for the few records that carry no caller-given time
	// (migration records, the CA's created_at, audit events without At).
	// nil means time.Now. Methods that depend on time take a now parameter.
	Now func() time.Time
	// BusyTimeout bounds waiting for another process's lock; zero means
	// DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxReaders bounds the connections that only read; zero means
	// DefaultMaxReaders.
	MaxReaders int
}

// Store is the gateway's state. It is safe for concurrent use.
type Store struct {
	// db is the one connection that writes (and runs migrations); every
	// transaction begins IMMEDIATE on it.
	db *sql.DB
	// rdb holds the connections that only read (query_only).
	rdb *sql.DB
	now func() time.Time

	// writeMu serializes this process's write transactions, so they queue
	// here rather than in SQLite's busy handler. Other processes are
	// handled by the busy timeout.
	writeMu sync.Mutex
	// commits counts the write transactions committed (Commits).
	commits atomic.Uint64
}

// Commits is how many write transactions this Store has committed since
// Open, each one sync to disk: for metrics, and for tests of batching.
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Open opens (creating if needed) the database at path and brings its schema
// up to date.
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
	db, err := sql.Open("sqlite", common+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	// One writer: this process's writes queue on writeMu anyway, and a
	// second writing connection would only wait in SQLite's busy handler.
	// It is kept open, so its files and cache are not made again for
	// every write.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	rdb, err := sql.Open("sqlite", common+"&_query_only=1")
	if err != nil {
		db.Close()
		return nil, err
	}
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{db: db, rdb: rdb, now: now}
	if err := s.checkPragmas(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
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

// Close closes the database.
func (s *Store) Close() error {
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("closing gateway store: %w", err)
	}
	return nil
}

// closeDBs closes both pools, readers first.
func (s *Store) closeDBs() error {
	var err error
	if s.rdb != nil {
		err = s.rdb.Close()
	}
	return errors.Join(err, s.db.Close())
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
	if err := checkPragmasOf(ctx, s.db); err != nil {
		return err
	}
	if err := checkPragmasOf(ctx, s.rdb); err != nil {
		return fmt.Errorf("reading connection: %w", err)
	}
	var readOnly int
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&readOnly); err != nil || readOnly != 1 {
		return fmt.Errorf("sqlite settings not applied (query_only=%d on a reading connection): %v", readOnly, err)
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

// update runs fn in one write transaction. It commits when fn returns nil or
// a commitThen, and rolls back otherwise.
func (s *Store) update(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
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

// querier is what both *sql.DB and *sql.Tx offer.
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
