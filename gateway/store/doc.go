// Package store is the gateway's persistent state in one SQLite file
// (modernc.org/sqlite, no cgo): the gateway CA, pairing codes and requests,
// devices, their certificates and revocations, registered nodes, invocations
// queued for offline nodes, and the audit log.
//
// Every state change is one transaction, committed with synchronous=FULL in
// WAL mode, so nothing a method acknowledged is lost in a crash. The state
// machines (code: open → used | expired | closed; request: pending →
// approved | rejected | expired, approved → issued; queued invocation:
// queued → delivered, queued | delivered → done | failed | expired |
// cancelled) are enforced
// here: a method refuses any other transition with [ErrIllegalTransition].
// Audit rows for a state change are written in the same transaction as the
// change.
//
// Time is an input: methods that need the time take a now parameter.
//
// The file holds the CA key: Open creates it with mode 0600 and refuses an
// existing file that others can read.
//
// This package owns storage only. It must not import networking, gRPC, QUIC
// or UI packages; callers define the narrow interfaces they need of *Store.
package store
