package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// Audit event kinds written by the store. Callers may write other kinds.
const (
	AuditCodeCreated           = "code.created"
	AuditCodeExpired           = "code.expired"
	AuditCodeClosed            = "code.closed" // reached MaxFailedAttempts
	AuditPairingAttempt        = "pairing.attempt"
	AuditPairingAttemptRefused = "pairing.attempt_refused"
	AuditPairingFailed         = "pairing.failed"
	AuditPairingCompleted      = "pairing.completed"
	AuditPairingRevoked        = "pairing.refused_revoked"
	AuditRequestApproved       = "request.approved"
	AuditRequestRejected       = "request.rejected"
	AuditRequestExpired        = "request.expired"
	AuditCertificateIssued     = "certificate.issued"
	AuditCertificateRenewed    = "certificate.renewed"
	AuditCertificateRefused    = "certificate.refused_revoked"
	AuditDeviceRevoked         = "device.revoked"
	AuditDeviceRemoved         = "device.removed"

	// Queued invocations, written by the store.
	AuditInvocationQueued    = "invocation.queued"
	AuditInvocationDone      = "invocation.done"   // a result arrived and says ok
	AuditInvocationFailed    = "invocation.failed" // a result arrived and says not ok
	AuditInvocationExpired   = "invocation.expired"
	AuditInvocationCancelled = "invocation.cancelled"
	// Direct (not queued) invocations: the gateway writes these with Audit.
	AuditInvocationRequested = "invocation.requested"
	AuditInvocationCompleted = "invocation.completed"

	// Node sessions refused at the handshake or on an RPC: a certificate
	// that is not ours, expired, or of a device revoked or not paired.
	AuditSessionRefused = "session.refused"
	// Rows deleted for being older than the audit retention.
	AuditPruned = "audit.pruned"
)

// AuditEvent is one row of the audit log. It must never carry a PIN secret,
// link secret or grant key.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Kind      string
	DeviceID  identity.DeviceID // zero if none
	RequestID string
	Detail    string
	// Source is where an unauthenticated client came from (its IP
	// address), or "".
	Source string
	// Count is how many events the row stands for; 0 is read as 1.
	Count int
	// Aggregated marks a row that counts the events of its kind, source,
	// device and request in the minute starting at At (truncated to the
	// minute when written); Detail is the first one's. Writing such a row
	// again adds its Count to the stored one.
	Aggregated bool
}

// Audit appends e to the audit log (its ID is ignored). A zero At means now
// by the store's clock.
func (s *Store) Audit(ctx context.Context, e AuditEvent) error {
	if e.Kind == "" {
		return errors.New("writing audit event: no kind")
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	err := s.update(ctx, func(tx *txn) error { return writeAudit(ctx, tx, e) })
	if err != nil {
		return fmt.Errorf("writing audit event %s: %w", e.Kind, err)
	}
	return nil
}

// AuditBatch appends events to the audit log in one transaction: one
// sync to disk for them all.
func (s *Store) AuditBatch(ctx context.Context, events []AuditEvent) error {
	for i := range events {
		if events[i].Kind == "" {
			return errors.New("writing audit events: an event has no kind")
		}
		if events[i].At.IsZero() {
			events[i].At = s.now()
		}
	}
	err := s.update(ctx, func(tx *txn) error {
		// The rows of a batch are mostly plain ones (calls): they go in
		// by auditRowsPerInsert in one statement, prepared once for the
		// batch, not one statement per row.
		var full *sql.Stmt
		defer func() {
			if full != nil {
				full.Close()
			}
		}()
		var args []any
		for i := 0; i < len(events); {
			if events[i].Aggregated {
				if err := writeAudit(ctx, tx, events[i]); err != nil {
					return err
				}
				i++
				continue
			}
			n := 0
			args = args[:0]
			for ; i+n < len(events) && !events[i+n].Aggregated && n < auditRowsPerInsert; n++ {
				args = appendPlainAuditArgs(args, events[i+n])
			}
			var err error
			if n == auditRowsPerInsert {
				if full == nil {
					if full, err = tx.PrepareContext(ctx, insertAuditRows(n)); err != nil {
						return fmt.Errorf("preparing to write audit events: %w", err)
					}
				}
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, insertAuditRows(n), args...)
			}
			if err != nil {
				return fmt.Errorf("writing %d audit events, the first %s: %w", n, events[i].Kind, err)
			}
			i += n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d audit events: %w", len(events), err)
	}
	return nil
}

// insertAudit writes a row that is not aggregated, with plainAuditArgs.
const insertAudit = `INSERT INTO audit_log (at, kind, device_id, request_id, detail, source, count)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// auditRowsPerInsert is how many plain rows one statement of AuditBatch
// inserts: 448 parameters, well under both backends' limits.
const auditRowsPerInsert = 64

// insertAuditRows is insertAudit for n rows, with appendPlainAuditArgs'
// arguments for each in turn.
func insertAuditRows(n int) string {
	return insertAudit + strings.Repeat(",\n\t(?, ?, ?, ?, ?, ?, ?)", n-1)
}

func plainAuditArgs(e AuditEvent) []any {
	return appendPlainAuditArgs(make([]any, 0, 7), e)
}

func appendPlainAuditArgs(args []any, e AuditEvent) []any {
	return append(args, e.At.UnixNano(), e.Kind, dbDeviceID(e.DeviceID), e.RequestID, e.Detail, e.Source, max(e.Count, 1))
}

func writeAudit(ctx context.Context, q querier, e AuditEvent) error {
	count := max(e.Count, 1)
	var err error
	if e.Aggregated {
		_, err = q.ExecContext(ctx, `INSERT INTO audit_log (at, kind, device_id, request_id, detail, source, count, aggregated)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1)
			ON CONFLICT (kind, source, device_id, request_id, at) WHERE aggregated = 1
			DO UPDATE SET count = audit_log.count + excluded.count`,
			e.At.Truncate(time.Minute).UnixNano(), e.Kind, dbDeviceID(e.DeviceID), e.RequestID, e.Detail, e.Source, count)
	} else {
		_, err = q.ExecContext(ctx, insertAudit, plainAuditArgs(e)...)
	}
	if err != nil {
		return fmt.Errorf("writing audit event %s: %w", e.Kind, err)
	}
	return nil
}

// ListAudit returns up to limit events, newest first; limit <= 0 means all.
func (s *Store) ListAudit(ctx context.Context, limit int) ([]AuditEvent, error) {
	query := `SELECT id, at, kind, device_id, request_id, detail, source, count, aggregated
		FROM audit_log ORDER BY id DESC`
	var args []any
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.ldb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at sql.NullInt64
		var dev string
		if err := rows.Scan(&e.ID, &at, &e.Kind, &dev, &e.RequestID, &e.Detail, &e.Source, &e.Count, &e.Aggregated); err != nil {
			return nil, fmt.Errorf("listing audit log: %w", err)
		}
		e.At = goTime(at)
		if e.DeviceID, err = goDeviceID(dev); err != nil {
			return nil, fmt.Errorf("listing audit log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing audit log: %w", err)
	}
	return out, nil
}

// pruneBatch bounds the rows one transaction of PruneAudit deletes, so that
// other writers wait for at most one batch.
const pruneBatch = 10_000

// PruneAudit deletes the audit rows older than before, in transactions of
// at most pruneBatch rows, and returns how many it deleted. When it deleted
// any it writes one audit.pruned row saying so, at now.
func (s *Store) PruneAudit(ctx context.Context, before, now time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.update(ctx, func(tx *txn) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN
				(SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)`, before.UnixNano(), pruneBatch)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil {
				return err
			}
			if n < pruneBatch && total+int(n) > 0 {
				return writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditPruned,
					Detail: fmt.Sprintf("deleted %d rows older than %s", total+int(n), before.UTC().Format(time.RFC3339))})
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("pruning the audit log: %w", err)
		}
		total += int(n)
		if n < pruneBatch {
			return total, nil
		}
	}
}
