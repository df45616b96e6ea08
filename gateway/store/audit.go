package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	AuditInvocationQueued  = "invocation.queued"
	AuditInvocationDone    = "invocation.done"   // a result arrived and says ok
	AuditInvocationFailed  = "invocation.failed" // a result arrived and says not ok
	AuditInvocationExpired = "invocation.expired"
	// Direct (not queued) invocations: the gateway writes these with Audit.
	AuditInvocationRequested = "invocation.requested"
	AuditInvocationCompleted = "invocation.completed"
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
	err := s.update(ctx, func(tx *sql.Tx) error { return writeAudit(ctx, tx, e) })
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
	err := s.update(ctx, func(tx *sql.Tx) error {
		for _, e := range events {
			if err := writeAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d audit events: %w", len(events), err)
	}
	return nil
}

func writeAudit(ctx context.Context, q querier, e AuditEvent) error {
	_, err := q.ExecContext(ctx, `INSERT INTO audit_log (at, kind, device_id, request_id, detail) VALUES (?, ?, ?, ?, ?)`,
		e.At.UnixNano(), e.Kind, dbDeviceID(e.DeviceID), e.RequestID, e.Detail)
	if err != nil {
		return fmt.Errorf("writing audit event %s: %w", e.Kind, err)
	}
	return nil
}

// ListAudit returns up to limit events, newest first; limit <= 0 means all.
func (s *Store) ListAudit(ctx context.Context, limit int) ([]AuditEvent, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, kind, device_id, request_id, detail FROM audit_log
		ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at sql.NullInt64
		var dev string
		if err := rows.Scan(&e.ID, &at, &e.Kind, &dev, &e.RequestID, &e.Detail); err != nil {
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
