package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CodeState is the state of a pairing code.
type CodeState string

// Pairing code states: open → used | expired | closed.
const (
	CodeOpen    CodeState = "open"
	CodeUsed    CodeState = "used"
	CodeExpired CodeState = "expired"
	CodeClosed  CodeState = "closed" // MaxFailedAttempts runs began
)

// MaxFailedAttempts is how many pairing runs a code allows before it closes.
const MaxFailedAttempts = 10

// Code is a pairing code. PINSecret and LinkSecret are secret; the store
// clears them once the code is no longer open, since no run can start then.
type Code struct {
	ID             int64
	Selector       string
	Name           string
	PINSecret      string
	LinkSecret     []byte
	AutoApprove    bool
	CreatedAt      time.Time
	ExpiresAt      time.Time
	State          CodeState
	FailedAttempts int
}

const codeColumns = `id, selector, name, pin_secret, link_secret, auto_approve, created_at, expires_at, state, failed_attempts`

func scanCode(row interface{ Scan(...any) error }) (Code, error) {
	var c Code
	var pin sql.NullString
	var auto int
	var created, expires sql.NullInt64
	var state string
	if err := row.Scan(&c.ID, &c.Selector, &c.Name, &pin, &c.LinkSecret, &auto, &created, &expires, &state, &c.FailedAttempts); err != nil {
		return Code{}, err
	}
	c.PINSecret = pin.String
	c.AutoApprove = auto != 0
	c.CreatedAt = goTime(created)
	c.ExpiresAt = goTime(expires)
	c.State = CodeState(state)
	return c, nil
}

// CreateCode stores a new open code and returns it with its ID. c.CreatedAt
// is the current time (zero means the store's clock). Open codes with the
// same selector that have expired by then are marked expired first; an open,
// unexpired one makes CreateCode fail with ErrSelectorInUse.
func (s *Store) CreateCode(ctx context.Context, c Code) (Code, error) {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	switch {
	case c.Selector == "":
		return Code{}, errors.New("creating pairing code: no selector")
	case c.PINSecret == "" || len(c.LinkSecret) == 0:
		return Code{}, fmt.Errorf("creating pairing code %s: missing secret", c.Selector)
	case !c.ExpiresAt.After(c.CreatedAt):
		return Code{}, fmt.Errorf("creating pairing code %s: expiry %v is not after creation %v", c.Selector, c.ExpiresAt, c.CreatedAt)
	}
	c.ID = 0
	c.State = CodeOpen
	c.FailedAttempts = 0
	now := c.CreatedAt
	err := s.update(ctx, func(tx *txn) error {
		if _, err := expireCodesTx(ctx, tx, c.Selector, now); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pairing_codes WHERE selector = ? AND state = 'open'`,
			c.Selector).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrSelectorInUse
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO pairing_codes
			(selector, name, pin_secret, link_secret, auto_approve, created_at, expires_at, state, failed_attempts)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 0) RETURNING id`,
			c.Selector, c.Name, c.PINSecret, c.LinkSecret, boolInt(c.AutoApprove), dbTime(c.CreatedAt), dbTime(c.ExpiresAt)).Scan(&c.ID)
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditCodeCreated,
			Detail: fmt.Sprintf("code %d (selector %s, name %q) expires %s, auto-approve %t",
				c.ID, c.Selector, c.Name, c.ExpiresAt.UTC().Format(time.RFC3339), c.AutoApprove)})
	})
	if err != nil {
		return Code{}, fmt.Errorf("creating pairing code %s: %w", c.Selector, err)
	}
	return c, nil
}

// GetCode returns the code with the given ID (secrets included while it is
// open), or ErrNotFound.
func (s *Store) GetCode(ctx context.Context, id int64) (Code, error) {
	c, err := scanCode(s.rdb.QueryRowContext(ctx, `SELECT `+codeColumns+` FROM pairing_codes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Code{}, fmt.Errorf("reading pairing code %d: %w", id, err)
	}
	return c, nil
}

// ListCodes returns codes oldest first, without their secrets: open ones
// only, or all when includeClosed. Stale open codes are marked expired first.
func (s *Store) ListCodes(ctx context.Context, includeClosed bool, now time.Time) ([]Code, error) {
	var out []Code
	err := s.update(ctx, func(tx *txn) error {
		out = out[:0] // a retried transaction lists afresh
		if _, err := expireCodesTx(ctx, tx, "", now); err != nil {
			return err
		}
		q := `SELECT ` + codeColumns + ` FROM pairing_codes`
		if !includeClosed {
			q += ` WHERE state = 'open'`
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCode(rows)
			if err != nil {
				return err
			}
			c.PINSecret, c.LinkSecret = "", nil
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("listing pairing codes: %w", err)
	}
	return out, nil
}

// expireCodesTx marks open codes whose expiry is at or before now expired
// (only those with selector, unless it is empty), clears their secrets and
// audits each. It returns how many changed.
func expireCodesTx(ctx context.Context, tx *txn, selector string, now time.Time) (int, error) {
	rows, err := tx.QueryContext(ctx, `UPDATE pairing_codes
		SET state = 'expired', pin_secret = NULL, link_secret = NULL
		WHERE state = 'open' AND expires_at <= ? AND (? = '' OR selector = ?)
		RETURNING id, selector`, now.UnixNano(), selector, selector)
	if err != nil {
		return 0, fmt.Errorf("expiring pairing codes: %w", err)
	}
	type expired struct {
		id  int64
		sel string
	}
	var done []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.id, &e.sel); err != nil {
			rows.Close()
			return 0, fmt.Errorf("expiring pairing codes: %w", err)
		}
		done = append(done, e)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("expiring pairing codes: %w", err)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("expiring pairing codes: %w", err)
	}
	for _, e := range done {
		if err := writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditCodeExpired,
			Detail: fmt.Sprintf("code %d (selector %s) expired", e.id, e.sel)}); err != nil {
			return 0, err
		}
	}
	return len(done), nil
}

// BeginAttempt starts a pairing run for the open code with selector and
// returns it, secrets included. The attempt counts as failed up front
// (CompletePairing takes it back): a run starts only while fewer than
// MaxFailedAttempts have begun, and the run that reaches the limit closes the
// code for further runs. A code past its expiry is marked expired. Any code
// that is unknown, used, expired or closed gives ErrCodeNotOpen.
//
// A selector with no open code costs what an open one does, one committed
// write of the same work (countDecoyTx), because the gateway answers it with
// a decoy exchange whose time must not tell it from a wrong secret; if that
// write fails, the error is the store's, as for an open code, not
// ErrCodeNotOpen.
func (s *Store) BeginAttempt(ctx context.Context, selector string, now time.Time) (Code, error) {
	var code Code
	err := s.update(ctx, func(tx *txn) error {
		c, err := scanCode(tx.QueryRowContext(ctx, `SELECT `+codeColumns+` FROM pairing_codes
			WHERE selector = ? AND state = 'open'`, selector))
		if errors.Is(err, sql.ErrNoRows) {
			if err := countDecoyTx(ctx, tx, selector, now); err != nil {
				return err
			}
			return commitThen{ErrCodeNotOpen}
		}
		if err != nil {
			return err
		}
		if !now.Before(c.ExpiresAt) {
			if _, err := expireCodesTx(ctx, tx, selector, now); err != nil {
				return err
			}
			return commitThen{ErrCodeNotOpen}
		}
		if c.FailedAttempts >= MaxFailedAttempts {
			// Not reachable through this package (the run that reaches the
			// limit closes the code); repair such a row rather than run.
			if err := closeCodeTx(ctx, tx, c, now); err != nil {
				return err
			}
			return commitThen{ErrCodeNotOpen}
		}
		c.FailedAttempts++
		if _, err := tx.ExecContext(ctx, `UPDATE pairing_codes SET failed_attempts = ? WHERE id = ?`,
			c.FailedAttempts, c.ID); err != nil {
			return err
		}
		if err := writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditPairingAttempt,
			Detail: fmt.Sprintf("code %d (selector %s): attempt %d of %d began", c.ID, c.Selector, c.FailedAttempts, MaxFailedAttempts)}); err != nil {
			return err
		}
		code = c // the secrets are for this run
		if c.FailedAttempts >= MaxFailedAttempts {
			if err := closeCodeTx(ctx, tx, c, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Code{}, fmt.Errorf("beginning pairing attempt for selector %s: %w", selector, err)
	}
	return code, nil
}

// countDecoyTx counts an attempt on selector, which has no open code, and
// keeps it among the last 64: an UPDATE of a count and one of an indexed
// row, the work of an open code's attempt (its count, its audit row), so
// that the decoy costs the same in bounded space.
func countDecoyTx(ctx context.Context, tx *txn, selector string, now time.Time) error {
	var n int64
	if err := tx.QueryRowContext(ctx, `UPDATE pairing_decoys SET answered = answered + 1 WHERE id = 1 RETURNING answered`).
		Scan(&n); err != nil {
		return fmt.Errorf("counting a decoy: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE recent_decoys SET at = ?, selector = ? WHERE slot = ?`,
		now.UnixNano(), selector, n%64); err != nil {
		return fmt.Errorf("recording a decoy: %w", err)
	}
	return nil
}

// closeCodeTx closes an open code that has used up its attempts and clears
// its secrets; runs already begun keep theirs in memory.
func closeCodeTx(ctx context.Context, tx *txn, c Code, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE pairing_codes SET state = 'closed', pin_secret = NULL, link_secret = NULL
		WHERE id = ? AND state = 'open'`, c.ID); err != nil {
		return err
	}
	return writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditCodeClosed,
		Detail: fmt.Sprintf("code %d (selector %s) closed after %d attempts", c.ID, c.Selector, MaxFailedAttempts)})
}
