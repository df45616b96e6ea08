// Package store is the gateway's persistent state: the gateway CA, pairing
// codes and requests, devices, their certificates and revocations,
// registered nodes, invocations queued for offline nodes, and the audit
// log. It is kept in one SQLite file (modernc.org/sqlite, no cgo; Open),
// the embedded default, or in a PostgreSQL database (pgx; OpenPostgres)
// that several gateways share. Both backends run the same queries through
// one *Store; what differs between them is in dialect.go, and each has its
// own migrations (migrations/, migrations/postgres/), version for version.
//
// Every state change is one transaction, committed durably (SQLite:
// synchronous=FULL in WAL mode), so nothing a method acknowledged is lost
// in a crash. The state machines (code: open → used | expired | closed;
// request: pending → approved | rejected | expired, approved → issued;
// queued invocation: queued → delivered, queued | delivered → done |
// failed | expired | cancelled) are enforced here: a method refuses any
// other transition with [ErrIllegalTransition], also when several
// gateways race for the same row (on PostgreSQL every write transaction
// is SERIALIZABLE and run again when it loses such a race). Audit rows
// for a state change are written in the same transaction as the change.
//
// Time is an input: methods that need the time take a now parameter.
//
// The database holds the CA key: Open creates the SQLite file with mode
// 0600 and refuses an existing file that others can read; on PostgreSQL,
// access to the database must be restricted like the key itself.
//
// This package owns storage only. It must not import networking, gRPC, QUIC
// or UI packages (the PostgreSQL driver's own connections aside); callers
// define the narrow interfaces they need of *Store.
package store
