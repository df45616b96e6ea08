package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// Device is a paired device.
type Device struct {
	ID                  identity.DeviceID
	PublicKey           []byte
	Name, Platform      string
	PairedAt            time.Time
	RevokedAt           time.Time // zero if not revoked
	CertificateNotAfter time.Time // of its latest certificate; zero if none
}

// Certificate is a certificate issued to a device.
type Certificate struct {
	Serial    string
	DeviceID  identity.DeviceID
	NotBefore time.Time
	NotAfter  time.Time
	DER       []byte
}

const deviceSelect = `SELECT d.id, d.public_key, d.name, d.platform, d.paired_at, v.revoked_at,
	(SELECT MAX(c.not_after) FROM certificates c WHERE c.device_id = d.id)
	FROM devices d LEFT JOIN revocations v ON v.device_id = d.id`

func scanDevice(row interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var id string
	var paired, revoked, notAfter sql.NullInt64
	if err := row.Scan(&id, &d.PublicKey, &d.Name, &d.Platform, &paired, &revoked, &notAfter); err != nil {
		return Device{}, err
	}
	var err error
	if d.ID, err = goDeviceID(id); err != nil {
		return Device{}, err
	}
	d.PairedAt = goTime(paired)
	d.RevokedAt = goTime(revoked)
	d.CertificateNotAfter = goTime(notAfter)
	return d, nil
}

const deviceByID = deviceSelect + ` WHERE d.id = ?`

func getDeviceTx(ctx context.Context, q querier, id identity.DeviceID) (Device, error) {
	return deviceRow(q.QueryRowContext(ctx, deviceByID, dbDeviceID(id)))
}

// deviceRow is the device of a lookup by id, or ErrNotFound.
func deviceRow(row *sql.Row) (Device, error) {
	d, err := scanDevice(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	return d, err
}

// GetDevice returns the device with id, or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id identity.DeviceID) (Device, error) {
	d, err := deviceRow(s.rdb.QueryRowContext(ctx, deviceByID, dbDeviceID(id)))
	if err != nil {
		return Device{}, fmt.Errorf("reading device %s: %w", id, err)
	}
	return d, nil
}

// ListDevices returns all devices (revoked ones included), in pairing order.
func (s *Store) ListDevices(ctx context.Context) ([]Device, error) {
	rows, err := s.ldb.QueryContext(ctx, deviceSelect+` ORDER BY d.paired_at, d.id`)
	if err != nil {
		return nil, fmt.Errorf("listing devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("listing devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing devices: %w", err)
	}
	return out, nil
}

func checkCertificate(c Certificate) error {
	switch {
	case c.Serial == "":
		return errors.New("certificate has no serial")
	case c.DeviceID.IsZero():
		return errors.New("certificate has no device ID")
	case len(c.DER) == 0:
		return errors.New("certificate has no DER")
	case c.NotBefore.IsZero() || !c.NotAfter.After(c.NotBefore):
		return fmt.Errorf("certificate validity %v to %v is empty", c.NotBefore, c.NotAfter)
	}
	return nil
}

func insertCertificateTx(ctx context.Context, tx *txn, c Certificate, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO certificates (serial, device_id, not_before, not_after, der, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		c.Serial, dbDeviceID(c.DeviceID), dbTime(c.NotBefore), dbTime(c.NotAfter), c.DER, now.UnixNano())
	if err != nil {
		return fmt.Errorf("storing certificate %s: %w", c.Serial, err)
	}
	return nil
}

// RecordCertificate stores a renewed certificate of an existing device:
// ErrDeviceRevoked when the device is revoked (or removed), ErrNotFound when
// it is not paired.
func (s *Store) RecordCertificate(ctx context.Context, cert Certificate, now time.Time) error {
	if err := checkCertificate(cert); err != nil {
		return fmt.Errorf("recording certificate: %w", err)
	}
	err := s.update(ctx, func(tx *txn) error {
		revoked, err := isRevokedTx(ctx, tx, cert.DeviceID)
		if err != nil {
			return err
		}
		if revoked {
			if err := writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditCertificateRefused, DeviceID: cert.DeviceID,
				Detail: fmt.Sprintf("renewal (serial %s) refused: device is revoked", cert.Serial)}); err != nil {
				return err
			}
			return commitThen{ErrDeviceRevoked}
		}
		if _, err := getDeviceTx(ctx, tx, cert.DeviceID); err != nil {
			return err
		}
		if err := insertCertificateTx(ctx, tx, cert, now); err != nil {
			return err
		}
		return writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditCertificateRenewed, DeviceID: cert.DeviceID,
			Detail: fmt.Sprintf("serial %s, valid %s to %s", cert.Serial,
				cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))})
	})
	if err != nil {
		return fmt.Errorf("recording certificate %s for device %s: %w", cert.Serial, cert.DeviceID, err)
	}
	return nil
}

// RevokeDevice revokes a paired device; revoking it again changes nothing.
// It returns the device with RevokedAt set, or ErrNotFound.
func (s *Store) RevokeDevice(ctx context.Context, id identity.DeviceID, now time.Time) (Device, error) {
	var d Device
	err := s.update(ctx, func(tx *txn) error {
		if _, err := getDeviceTx(ctx, tx, id); err != nil {
			return err
		}
		added, err := revokeTx(ctx, tx, id, now)
		if err != nil {
			return err
		}
		if added {
			if err := writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditDeviceRevoked, DeviceID: id,
				Detail: "device revoked"}); err != nil {
				return err
			}
		}
		d, err = getDeviceTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("revoking device %s: %w", id, err)
	}
	return d, nil
}

// RemoveDevice deletes a device with its node record and certificates, but
// keeps (or adds) its revocation, so a still-valid certificate stays refused
// and the same device key cannot pair again. ErrNotFound when it is not
// paired.
func (s *Store) RemoveDevice(ctx context.Context, id identity.DeviceID, now time.Time) error {
	err := s.update(ctx, func(tx *txn) error {
		d, err := getDeviceTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := revokeTx(ctx, tx, id, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, dbDeviceID(id)); err != nil {
			return err
		}
		return writeAudit(ctx, tx, AuditEvent{At: now, Kind: AuditDeviceRemoved, DeviceID: id,
			Detail: fmt.Sprintf("device %q (%s) removed; stays revoked", d.Name, d.Platform)})
	})
	if err != nil {
		return fmt.Errorf("removing device %s: %w", id, err)
	}
	return nil
}

// revokeTx adds a revocation unless one exists, and reports whether it did.
// The new revocation takes the next sequence number (migration 0007 says
// why MAX + 1); on PostgreSQL the transaction also notifies
// RevocationChannel, which PostgreSQL delivers to the other gateways only
// once it commits, and not at all if it rolls back.
func revokeTx(ctx context.Context, tx *txn, id identity.DeviceID, now time.Time) (bool, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `INSERT INTO revocations (device_id, revoked_at, seq)
		VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM revocations))
		ON CONFLICT (device_id) DO NOTHING RETURNING seq`, dbDeviceID(id), now.UnixNano()).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if tx.d == postgresDialect {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify(?, ?)`, RevocationChannel, strconv.FormatInt(seq, 10)); err != nil {
			return false, fmt.Errorf("notifying the other gateways: %w", err)
		}
	}
	return true, nil
}

// RevocationChannel is the PostgreSQL notification channel on which every
// revocation is announced, with its sequence number as the payload.
const RevocationChannel = "palyra_revocations"

// Revocation is a revoked (or removed) device, with the sequence number
// its revocation took.
type Revocation struct {
	Seq       int64
	DeviceID  identity.DeviceID
	RevokedAt time.Time
}

// LastRevocation is the highest revocation sequence number, 0 when no
// device was ever revoked: where a gateway starting up begins to follow
// revocations (RevocationsAfter).
func (s *Store) LastRevocation(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM revocations`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading the last revocation: %w", err)
	}
	return seq, nil
}

// RevocationsAfter returns up to limit revocations whose sequence number is
// above after, in sequence order.
func (s *Store) RevocationsAfter(ctx context.Context, after int64, limit int) ([]Revocation, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, device_id, revoked_at FROM revocations
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading revocations after %d: %w", after, err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var r Revocation
		var dev string
		var at sql.NullInt64
		if err := rows.Scan(&r.Seq, &dev, &at); err != nil {
			return nil, fmt.Errorf("reading revocations after %d: %w", after, err)
		}
		if r.DeviceID, err = goDeviceID(dev); err != nil {
			return nil, fmt.Errorf("reading revocations after %d: %w", after, err)
		}
		r.RevokedAt = goTime(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading revocations after %d: %w", after, err)
	}
	return out, nil
}

const isRevokedQuery = `SELECT EXISTS (SELECT 1 FROM revocations WHERE device_id = ?)`

func isRevokedTx(ctx context.Context, q querier, id identity.DeviceID) (bool, error) {
	var revoked bool
	err := q.QueryRowContext(ctx, isRevokedQuery, dbDeviceID(id)).Scan(&revoked)
	return revoked, err
}

// IsRevoked reports whether id is revoked (removed devices stay revoked).
func (s *Store) IsRevoked(ctx context.Context, id identity.DeviceID) (bool, error) {
	revoked, err := isRevokedTx(ctx, s.rdb, id)
	if err != nil {
		return false, fmt.Errorf("checking revocation of device %s: %w", id, err)
	}
	return revoked, nil
}

// RevokedDevices returns every revoked device ID, for an in-memory index.
func (s *Store) RevokedDevices(ctx context.Context) ([]identity.DeviceID, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT device_id FROM revocations ORDER BY revoked_at, device_id`)
	if err != nil {
		return nil, fmt.Errorf("listing revoked devices: %w", err)
	}
	defer rows.Close()
	var out []identity.DeviceID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("listing revoked devices: %w", err)
		}
		id, err := goDeviceID(s)
		if err != nil {
			return nil, fmt.Errorf("listing revoked devices: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing revoked devices: %w", err)
	}
	return out, nil
}
