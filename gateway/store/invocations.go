package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/palyra/palyra-go/identity"
)

// InvocationState is the state of a queued invocation.
type InvocationState string

// Queued invocation states: queued → delivered (and delivered → delivered
// again after a reconnect); queued | delivered → done | failed | expired |
// cancelled, which are final.
const (
	// InvocationQueued: waiting for the node to come online.
	InvocationQueued InvocationState = "queued"
	// InvocationDelivered: sent to the node, no result yet. It is delivered
	// again after a reconnect; the node dedupes by request ID.
	InvocationDelivered InvocationState = "delivered"
	// InvocationDone: a result arrived and says ok.
	InvocationDone InvocationState = "done"
	// InvocationFailed: a result arrived and says not ok.
	InvocationFailed InvocationState = "failed"
	// InvocationExpired: its queue TTL passed before a result.
	InvocationExpired InvocationState = "expired"
	// InvocationCancelled: an admin cancelled it before a result; it is
	// not delivered again, and a result that comes after is refused.
	InvocationCancelled InvocationState = "cancelled"
)

// InvocationStates are the states in their order, for listings.
var InvocationStates = []InvocationState{InvocationQueued, InvocationDelivered, InvocationDone, InvocationFailed,
	InvocationExpired, InvocationCancelled}

// Pending reports whether a call in state s may still get a result: it is
// queued or delivered.
func (s InvocationState) Pending() bool { return s == InvocationQueued || s == InvocationDelivered }

// MaxPendingInvocations bounds what PendingInvocations returns.
const MaxPendingInvocations = 1000

const pendingInvocationsQuery = `SELECT ` + invocationColumns + ` FROM invocations
	WHERE device_id = ? AND state IN ('queued', 'delivered') AND expires_at > ?
	ORDER BY created_at, request_id LIMIT ?`

// Invocation is a call queued for a node that was offline. Args and Result
// may hold user data: they are never written to the audit log.
type Invocation struct {
	RequestID  string // a ULID in canonical (upper-case) text form; the primary key
	DeviceID   identity.DeviceID
	Capability string
	Args       []byte // JSON; nil when none
	Caller     string
	CreatedAt  time.Time
	ExpiresAt  time.Time     // end of the queue TTL
	Timeout    time.Duration // per-delivery deadline
	State      InvocationState
	Attempts   int       // deliveries started
	Result     []byte    // opaque encoded result (the caller stores a marshaled protobuf), set when done, failed or cancelled
	FinishedAt time.Time // when it became done, failed or cancelled, or its ExpiresAt when expired; zero before
}

const invocationColumns = `request_id, device_id, capability, args, caller, created_at, expires_at, timeout_ns,
	state, attempts, result, finished_at`

func scanInvocation(row interface{ Scan(...any) error }) (Invocation, error) {
	var inv Invocation
	var dev, state string
	var created, expires, finished sql.NullInt64
	var timeout int64
	if err := row.Scan(&inv.RequestID, &dev, &inv.Capability, &inv.Args, &inv.Caller, &created, &expires, &timeout,
		&state, &inv.Attempts, &inv.Result, &finished); err != nil {
		return Invocation{}, err
	}
	var err error
	if inv.DeviceID, err = goDeviceID(dev); err != nil {
		return Invocation{}, err
	}
	inv.CreatedAt = goTime(created)
	inv.ExpiresAt = goTime(expires)
	inv.Timeout = time.Duration(timeout)
	inv.State = InvocationState(state)
	inv.FinishedAt = goTime(finished)
	return inv, nil
}

func getInvocationTx(ctx context.Context, q querier, requestID string) (Invocation, error) {
	inv, err := scanInvocation(q.QueryRowContext(ctx, `SELECT `+invocationColumns+` FROM invocations WHERE request_id = ?`,
		requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return Invocation{}, ErrNotFound
	}
	return inv, err
}

func checkInvocation(inv Invocation) error {
	if u, err := ulid.ParseStrict(inv.RequestID); err != nil {
		return fmt.Errorf("request ID: %w", err)
	} else if u.String() != inv.RequestID {
		return fmt.Errorf("request ID %q is not in canonical form %s", inv.RequestID, u)
	}
	switch {
	case inv.DeviceID.IsZero():
		return errors.New("invocation has no device ID")
	case inv.Capability == "":
		return errors.New("invocation has no capability")
	case len(inv.Args) > 0 && !json.Valid(inv.Args):
		return errors.New("invocation arguments are not valid JSON")
	case inv.CreatedAt.IsZero():
		return errors.New("invocation has no creation time")
	case !inv.ExpiresAt.After(inv.CreatedAt):
		return fmt.Errorf("invocation expiry %v is not after its creation %v", inv.ExpiresAt, inv.CreatedAt)
	case inv.Timeout <= 0:
		return fmt.Errorf("invocation timeout %v is not positive", inv.Timeout)
	}
	return nil
}

// QueueInvocation stores inv in state queued, with no attempts, result or
// finish time whatever inv says, and audits it (invocation.queued). Its
// CreatedAt must be set and ExpiresAt after it. The device must be paired
// (ErrNotFound) and not revoked (ErrDeviceRevoked); a request ID already
// stored, in any state, gives ErrDuplicate.
func (s *Store) QueueInvocation(ctx context.Context, inv Invocation) error {
	if err := checkInvocation(inv); err != nil {
		return fmt.Errorf("queueing invocation %s: %w", inv.RequestID, err)
	}
	err := s.update(ctx, func(tx *txn) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM invocations WHERE request_id = ?`,
			inv.RequestID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrDuplicate
		}
		revoked, err := isRevokedTx(ctx, tx, inv.DeviceID)
		if err != nil {
			return err
		}
		if revoked {
			return ErrDeviceRevoked
		}
		if _, err := getDeviceTx(ctx, tx, inv.DeviceID); err != nil {
			return fmt.Errorf("device %s: %w", inv.DeviceID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO invocations
			(request_id, device_id, capability, args, caller, created_at, expires_at, timeout_ns, state, attempts)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0)`,
			inv.RequestID, dbDeviceID(inv.DeviceID), inv.Capability, nilIfEmpty(inv.Args), inv.Caller,
			inv.CreatedAt.UnixNano(), inv.ExpiresAt.UnixNano(), int64(inv.Timeout)); err != nil {
			return err
		}
		return writeAudit(ctx, tx, AuditEvent{At: inv.CreatedAt, Kind: AuditInvocationQueued, DeviceID: inv.DeviceID,
			RequestID: inv.RequestID, Detail: fmt.Sprintf("%s for caller %q, queued until %s, timeout %s",
				inv.Capability, inv.Caller, inv.ExpiresAt.UTC().Format(time.RFC3339), inv.Timeout)})
	})
	if err != nil {
		return fmt.Errorf("queueing invocation %s: %w", inv.RequestID, err)
	}
	return nil
}

// PendingInvocations returns the device's invocations that wait for a
// result (queued or delivered) and whose expiry is after now, oldest first,
// at most MaxPendingInvocations. It changes nothing; expiry is left to
// ExpireInvocations.
func (s *Store) PendingInvocations(ctx context.Context, id identity.DeviceID, now time.Time) ([]Invocation, error) {
	rows, err := s.rdb.QueryContext(ctx, pendingInvocationsQuery, dbDeviceID(id), now.UnixNano(), MaxPendingInvocations)
	if err != nil {
		return nil, fmt.Errorf("listing pending invocations of %s: %w", id, err)
	}
	defer rows.Close()
	var out []Invocation
	for rows.Next() {
		inv, err := scanInvocation(rows)
		if err != nil {
			return nil, fmt.Errorf("listing pending invocations of %s: %w", id, err)
		}
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing pending invocations of %s: %w", id, err)
	}
	return out, nil
}

// MarkDelivered records that a delivery of a queued or delivered invocation
// starts: it becomes delivered and its Attempts grows by one. It returns the
// updated invocation. One that is done gives ErrIllegalTransition; so does
// one past its expiry, which is marked expired (and audited) first. An
// unknown request ID gives ErrNotFound.
func (s *Store) MarkDelivered(ctx context.Context, requestID string, now time.Time) (Invocation, error) {
	var out Invocation
	err := s.update(ctx, func(tx *txn) error {
		inv, err := pendingInvocationTx(ctx, tx, requestID, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE invocations SET state = 'delivered', attempts = attempts + 1
			WHERE request_id = ?`, inv.RequestID); err != nil {
			return err
		}
		out, err = getInvocationTx(ctx, tx, requestID)
		return err
	})
	if err != nil {
		return Invocation{}, fmt.Errorf("marking invocation %s delivered: %w", requestID, err)
	}
	return out, nil
}

// FinishInvocation stores the result of a queued or delivered invocation:
// it becomes done (ok) or failed (not ok) with result and FinishedAt now,
// audited as invocation.done or invocation.failed. A second result for one that is
// done gives ErrIllegalTransition, so a duplicate is refused; so does a
// result for one past its expiry, which is marked expired (and audited)
// first. An unknown request ID gives ErrNotFound.
func (s *Store) FinishInvocation(ctx context.Context, requestID string, result []byte, ok bool, now time.Time) error {
	err := s.update(ctx, func(tx *txn) error {
		inv, err := pendingInvocationTx(ctx, tx, requestID, now)
		if err != nil {
			return err
		}
		state, kind, outcome := InvocationDone, AuditInvocationDone, "succeeded"
		if !ok {
			state, kind, outcome = InvocationFailed, AuditInvocationFailed, "failed"
		}
		if _, err := tx.ExecContext(ctx, `UPDATE invocations SET state = ?, result = ?, finished_at = ?
			WHERE request_id = ?`, state, nilIfEmpty(result), now.UnixNano(), inv.RequestID); err != nil {
			return err
		}
		return writeAudit(ctx, tx, AuditEvent{At: now, Kind: kind, DeviceID: inv.DeviceID, RequestID: inv.RequestID,
			Detail: fmt.Sprintf("%s for caller %q %s after %d deliveries", inv.Capability, inv.Caller, outcome, inv.Attempts)})
	})
	if err != nil {
		return fmt.Errorf("finishing invocation %s: %w", requestID, err)
	}
	return nil
}

// pendingInvocationTx returns the invocation if it is queued or delivered
// and not past its expiry. One past its expiry is marked expired and a
// commitThen returned, so that the expiry is kept while the caller fails.
func pendingInvocationTx(ctx context.Context, tx *txn, requestID string, now time.Time) (Invocation, error) {
	inv, err := getInvocationTx(ctx, tx, requestID)
	if err != nil {
		return Invocation{}, err
	}
	if !inv.State.Pending() {
		return Invocation{}, fmt.Errorf("%w: invocation is %s", ErrIllegalTransition, inv.State)
	}
	if !now.Before(inv.ExpiresAt) {
		if _, err := expireInvocationsTx(ctx, tx, requestID, now); err != nil {
			return Invocation{}, err
		}
		return Invocation{}, commitThen{fmt.Errorf("%w: invocation expired at %s", ErrIllegalTransition,
			inv.ExpiresAt.UTC().Format(time.RFC3339Nano))}
	}
	return inv, nil
}

// GetInvocation returns the invocation with requestID, or ErrNotFound. It
// does not expire it; callers compare ExpiresAt themselves or call
// ExpireInvocations.
func (s *Store) GetInvocation(ctx context.Context, requestID string) (Invocation, error) {
	inv, err := getInvocationTx(ctx, s.rdb, requestID)
	if err != nil {
		return Invocation{}, fmt.Errorf("reading invocation %s: %w", requestID, err)
	}
	return inv, nil
}

// ExpireInvocations marks queued and delivered invocations whose expiry is
// at or before now expired, audits each (invocation.expired) and returns
// how many changed.
func (s *Store) ExpireInvocations(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.update(ctx, func(tx *txn) error {
		var err error
		n, err = expireInvocationsTx(ctx, tx, "", now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sweeping expired invocations: %w", err)
	}
	return n, nil
}

// expireInvocationsTx marks queued and delivered invocations whose expiry is
// at or before now expired (only requestID, unless it is empty), with
// FinishedAt their expiry, and audits each. It returns how many changed.
func expireInvocationsTx(ctx context.Context, tx *txn, requestID string, now time.Time) (int, error) {
	rows, err := tx.QueryContext(ctx, `UPDATE invocations SET state = 'expired', finished_at = expires_at
		WHERE state IN ('queued', 'delivered') AND expires_at <= ? AND (? = '' OR request_id = ?)
		RETURNING request_id, device_id, capability, caller, attempts`, now.UnixNano(), requestID, requestID)
	if err != nil {
		return 0, fmt.Errorf("expiring invocations: %w", err)
	}
	var done []AuditEvent
	for rows.Next() {
		var rid, dev, capability, caller string
		var attempts int
		if err := rows.Scan(&rid, &dev, &capability, &caller, &attempts); err != nil {
			rows.Close()
			return 0, fmt.Errorf("expiring invocations: %w", err)
		}
		did, err := goDeviceID(dev)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("expiring invocations: %w", err)
		}
		done = append(done, AuditEvent{At: now, Kind: AuditInvocationExpired, DeviceID: did, RequestID: rid,
			Detail: fmt.Sprintf("%s for caller %q expired without a result after %d deliveries", capability, caller, attempts)})
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("expiring invocations: %w", err)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("expiring invocations: %w", err)
	}
	for _, e := range done {
		if err := writeAudit(ctx, tx, e); err != nil {
			return 0, err
		}
	}
	return len(done), nil
}

// CancelInvocation cancels a queued or delivered invocation: it becomes
// cancelled with result (what its caller is told) and FinishedAt now,
// audited as invocation.cancelled, and is neither delivered again nor
// given a result later. It returns the state it had and the cancelled
// invocation. One that has ended gives ErrIllegalTransition (its state
// says how it ended); so does one past its expiry, which is marked expired
// first. An unknown request ID gives ErrNotFound.
func (s *Store) CancelInvocation(ctx context.Context, requestID string, result []byte, now time.Time) (InvocationState, Invocation, error) {
	var was InvocationState
	var out Invocation
	err := s.update(ctx, func(tx *txn) error {
		inv, err := pendingInvocationTx(ctx, tx, requestID, now)
		if err != nil {
			return err
		}
		was = inv.State
		if _, err := tx.ExecContext(ctx, `UPDATE invocations SET state = 'cancelled', result = ?, finished_at = ?
			WHERE request_id = ?`, nilIfEmpty(result), now.UnixNano(), inv.RequestID); err != nil {
			return err
		}
		if err := writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditInvocationCancelled, DeviceID: inv.DeviceID,
			RequestID: inv.RequestID, Detail: fmt.Sprintf("%s for caller %q cancelled while %s, after %d deliveries",
				inv.Capability, inv.Caller, inv.State, inv.Attempts)}); err != nil {
			return err
		}
		out, err = getInvocationTx(ctx, tx, requestID)
		return err
	})
	if err != nil {
		return "", Invocation{}, fmt.Errorf("cancelling invocation %s: %w", requestID, err)
	}
	return was, out, nil
}

// MaxListInvocations bounds what ListInvocations returns.
const MaxListInvocations = 1000

// InvocationFilter selects invocations for ListInvocations.
type InvocationFilter struct {
	// DeviceID, if not zero, keeps that device's only.
	DeviceID identity.DeviceID
	// States, if not empty, keeps those in one of them.
	States []InvocationState
	// Limit bounds how many are returned: 1 to MaxListInvocations, and
	// MaxListInvocations when out of that range.
	Limit int
}

// ListInvocations returns the invocations f selects, newest first. It
// changes nothing: one past its expiry may still say queued or delivered
// until ExpireInvocations runs.
func (s *Store) ListInvocations(ctx context.Context, f InvocationFilter) ([]Invocation, error) {
	limit := f.Limit
	if limit <= 0 || limit > MaxListInvocations {
		limit = MaxListInvocations
	}
	query := `SELECT ` + invocationColumns + ` FROM invocations WHERE (? = '' OR device_id = ?)`
	args := []any{dbDeviceID(f.DeviceID), dbDeviceID(f.DeviceID)}
	if len(f.States) > 0 {
		query += ` AND state IN (?` + strings.Repeat(", ?", len(f.States)-1) + `)`
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	query += ` ORDER BY created_at DESC, request_id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.ldb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing invocations: %w", err)
	}
	defer rows.Close()
	var out []Invocation
	for rows.Next() {
		inv, err := scanInvocation(rows)
		if err != nil {
			return nil, fmt.Errorf("listing invocations: %w", err)
		}
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing invocations: %w", err)
	}
	return out, nil
}
