package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// Node is what a registered node last said about itself. Whether it is
// online is kept in memory by the node runtime, not here.
type Node struct {
	DeviceID                identity.DeviceID
	Name, Platform, Version string
	LastSeen                time.Time
}

// UpsertNode records a node's registration. The device must be paired
// (ErrNotFound) and not revoked (ErrDeviceRevoked).
func (s *Store) UpsertNode(ctx context.Context, n Node) error {
	err := s.update(ctx, func(tx *txn) error { return upsertNodeTx(ctx, tx, n) })
	if err != nil {
		return fmt.Errorf("storing node %s: %w", n.DeviceID, err)
	}
	return nil
}

// UpsertNodes records many registrations in one transaction (one sync to
// disk for them all), in order. Each node's outcome is its own: outcomes[i]
// is nil when nodes[i] was recorded, or wraps ErrNotFound (not paired) or
// ErrDeviceRevoked, as UpsertNode's would, and the others are recorded
// all the same. err is a failure of the store itself: then nothing was
// recorded, and outcomes is nil.
func (s *Store) UpsertNodes(ctx context.Context, nodes []Node) (outcomes []error, err error) {
	if len(nodes) == 0 {
		return nil, nil
	}
	err = s.update(ctx, func(tx *txn) error {
		// Set afresh on every run of a transaction that is run again.
		outcomes = make([]error, len(nodes))
		for i, n := range nodes {
			err := upsertNodeTx(ctx, tx, n)
			switch {
			case errors.Is(err, ErrNotFound) || errors.Is(err, ErrDeviceRevoked):
				// Found by reading, before anything was written for this
				// node: the transaction goes on with the others.
				outcomes[i] = fmt.Errorf("storing node %s: %w", n.DeviceID, err)
			case err != nil:
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing %d nodes: %w", len(nodes), err)
	}
	return outcomes, nil
}

// upsertNodeTx is one node's registration, within tx.
func upsertNodeTx(ctx context.Context, tx *txn, n Node) error {
	revoked, err := isRevokedTx(ctx, tx, n.DeviceID)
	if err != nil {
		return err
	}
	if revoked {
		return ErrDeviceRevoked
	}
	if _, err := getDeviceTx(ctx, tx, n.DeviceID); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, upsertNodeQuery, dbDeviceID(n.DeviceID), n.Name, n.Platform, n.Version, dbTime(n.LastSeen))
	return err
}

const upsertNodeQuery = `INSERT INTO nodes (device_id, name, platform, version, last_seen) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (device_id) DO UPDATE SET name = excluded.name, platform = excluded.platform,
		version = excluded.version, last_seen = excluded.last_seen`

// TouchNodes records the last-seen times of many nodes in one transaction
// (one sync to disk for them all). A time never moves a node's last-seen
// back, so a batch that was late cannot undo a newer registration; nodes
// that never registered are skipped.
func (s *Store) TouchNodes(ctx context.Context, lastSeen map[identity.DeviceID]time.Time) error {
	if len(lastSeen) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *txn) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE nodes SET last_seen = ? WHERE device_id = ? AND COALESCE(last_seen, 0) < ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, at := range lastSeen {
			if at.IsZero() {
				continue // never moves a last-seen back
			}
			if _, err := stmt.ExecContext(ctx, at.UnixNano(), dbDeviceID(id), at.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the last-seen times of %d nodes: %w", len(lastSeen), err)
	}
	return nil
}

// ListNodes returns the nodes of existing devices, revoked ones included,
// in no particular order: the admin API sorts what it lists, and an ORDER
// BY here was the larger part of the listing's cost (a sort of every row
// in SQLite, for a list sorted again after it). Every row is an existing
// device's (its foreign key deletes it with the device), so there is no
// join with devices either: that was 40 % of BenchmarkListNodes.
func (s *Store) ListNodes(ctx context.Context) ([]Node, error) {
	rows, err := s.ldb.QueryContext(ctx, `SELECT device_id, name, platform, version, last_seen FROM nodes`)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	defer rows.Close()
	out := make([]Node, 0, s.nodesListed.Load())
	for rows.Next() {
		var n Node
		var id string
		var seen sql.NullInt64
		if err := rows.Scan(&id, &n.Name, &n.Platform, &n.Version, &seen); err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		if n.DeviceID, err = goDeviceID(id); err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		n.LastSeen = goTime(seen)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	s.nodesListed.Store(int64(len(out)))
	return out, nil
}
