package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialect is the SQL backend of a Store. The queries of this package are
// written once, in the SQL both backends accept, with ? placeholders; what
// differs is here: placeholders, how a write transaction begins, which
// errors mean "run it again", and the schema (each backend has its own
// migrations directory).
type dialect int

const (
	sqliteDialect dialect = iota
	postgresDialect
)

func (d dialect) String() string {
	if d == postgresDialect {
		return "postgres"
	}
	return "sqlite"
}

// rebind turns the ? placeholders of q into PostgreSQL's $1, $2, …; SQLite
// takes q as it is. A ? inside a quoted string or identifier is left
// alone. As in SQLite, ?NNN is parameter NNN, and a bare ? the one after
// the highest so far.
func (d dialect) rebind(q string) string {
	if d != postgresDialect || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	var quote byte // the quote we are inside, or 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0 // a doubled quote closes and reopens: same result
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if j > i+1 {
				if k, err := strconv.Atoi(q[i+1 : j]); err == nil {
					n = max(n, k)
				}
				b.WriteString("$" + q[i+1:j])
				i = j - 1
				continue
			}
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// txOptions are the options of a write transaction. SQLite's are in the
// connection (BEGIN IMMEDIATE takes the one write lock up front). On
// PostgreSQL several gateways write the same rows at once, and every
// write here reads what it is about to change and decides on it (is the
// code still open, the request pending, the device not revoked, the
// request ID unused): those decisions are only safe when no other
// transaction changed what they read. SERIALIZABLE gives exactly that
// for every transaction of the package, including the checks on rows
// that do not exist yet (a revocation, a duplicate request ID), which
// SELECT … FOR UPDATE cannot lock; the price is that a transaction in
// conflict fails with a serialization failure and is run again (update).
func (d dialect) txOptions() *sql.TxOptions {
	if d == postgresDialect {
		return &sql.TxOptions{Isolation: sql.LevelSerializable}
	}
	return nil
}

// PostgreSQL's SQLSTATEs that mean the transaction lost a race and may
// simply be run again.
const (
	sqlstateSerializationFailure = "40001"
	sqlstateDeadlockDetected     = "40P01"
)

// retryable reports whether err means the transaction was rolled back
// because of a concurrent one, so running it again can succeed.
func (d dialect) retryable(err error) bool {
	if d != postgresDialect || err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == sqlstateSerializationFailure || pgErr.Code == sqlstateDeadlockDetected
}

// tableExistsQuery returns a query that yields one row when the table
// named by its one argument exists.
func (d dialect) tableExistsQuery() string {
	if d == postgresDialect {
		return `SELECT 1 WHERE to_regclass(?) IS NOT NULL`
	}
	return `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`
}

// db is a pool of connections that rebinds the queries it runs, and runs
// those prepared on it (prepared) through their statements.
type db struct {
	*sql.DB
	d dialect
	// prepared holds statements prepared on this pool, by query text;
	// set once, before the store is used.
	prepared map[string]*sql.Stmt
}

func (h *db) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := h.prepared[query]; st != nil {
		return st.ExecContext(ctx, args...)
	}
	return h.DB.ExecContext(ctx, h.d.rebind(query), args...)
}

func (h *db) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := h.prepared[query]; st != nil {
		return st.QueryContext(ctx, args...)
	}
	return h.DB.QueryContext(ctx, h.d.rebind(query), args...)
}

func (h *db) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := h.prepared[query]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return h.DB.QueryRowContext(ctx, h.d.rebind(query), args...)
}

func (h *db) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return h.DB.PrepareContext(ctx, h.d.rebind(query))
}

// txn is a write transaction that rebinds the queries it runs, and runs
// those the store prepared on the writer (Store.prepared) through their
// statements.
type txn struct {
	*sql.Tx
	d dialect
	// prepared is Store.prepared, or nil (migrations).
	prepared map[string]*sql.Stmt
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.prepared[query]; st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, t.d.rebind(query), args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.prepared[query]; st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, t.d.rebind(query), args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.prepared[query]; st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, t.d.rebind(query), args...)
}

func (t *txn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, t.d.rebind(query))
}
