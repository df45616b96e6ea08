package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/palyra/palyra-go/identity"
)

// LoadCA returns the gateway CA's certificate and key in PEM, or ErrNotFound
// when none has been saved yet. keyPEM is secret.
func (s *Store) LoadCA(ctx context.Context) (certPEM, keyPEM []byte, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT cert_pem, key_pem FROM ca WHERE id = 1`).Scan(&certPEM, &keyPEM)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("loading gateway CA: %w", ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loading gateway CA: %w", err)
	}
	return certPEM, keyPEM, nil
}

// SaveCA stores the gateway CA. It is written once: when a CA exists already
// SaveCA returns ErrIllegalTransition and changes nothing. The pair is checked
// with identity.ParseCA first.
func (s *Store) SaveCA(ctx context.Context, certPEM, keyPEM []byte) error {
	if _, err := identity.ParseCA(certPEM, keyPEM); err != nil {
		return fmt.Errorf("saving gateway CA: %w", err)
	}
	err := s.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO ca (id, cert_pem, key_pem, created_at) VALUES (1, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, certPEM, keyPEM, s.now().UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: a CA exists already", ErrIllegalTransition)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("saving gateway CA: %w", err)
	}
	return nil
}
