package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// GatewayLease is a gateway of this database as its row says: where nodes
// and the other gateways reach it, and until when its lease runs.
type GatewayLease struct {
	ID string
	// NodeAddresses are the HOST:PORT addresses it tells nodes.
	NodeAddresses []string
	// PeerAddress is the HOST:PORT the other gateways dial.
	PeerAddress  string
	StartedAt    time.Time
	LeaseExpires time.Time
}

// Live reports whether the lease runs at now.
func (g GatewayLease) Live(now time.Time) bool { return now.Before(g.LeaseExpires) }

// JoinGateway records g as a gateway of this database, with its lease
// running until g.LeaseExpires, and deletes the routes a gateway of the same
// ID left: a gateway that starts holds no session yet, so those are of a
// run that ended without detaching them.
func (s *Store) JoinGateway(ctx context.Context, g GatewayLease) error {
	addrs, err := json.Marshal(g.NodeAddresses)
	if err != nil {
		return fmt.Errorf("recording gateway %s: %w", g.ID, err)
	}
	err = s.update(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM routes WHERE gateway_id = ?`, g.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO gateways (id, node_addresses, peer_address, started_at, lease_expires) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET node_addresses = excluded.node_addresses, peer_address = excluded.peer_address,
				started_at = excluded.started_at, lease_expires = excluded.lease_expires`,
			g.ID, string(addrs), g.PeerAddress, g.StartedAt.UnixNano(), g.LeaseExpires.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("recording gateway %s: %w", g.ID, err)
	}
	return nil
}

// RenewGateway moves gateway id's lease to until. It never shortens a
// lease (a renewal that was late changes nothing), and gives ErrNotFound
// when the gateway has no row (another gateway pruned it as dead: it must
// join again).
func (s *Store) RenewGateway(ctx context.Context, id string, until time.Time) error {
	err := s.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE gateways SET lease_expires = CASE WHEN lease_expires < ? THEN ? ELSE lease_expires END WHERE id = ?`,
			until.UnixNano(), until.UnixNano(), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("renewing the lease of gateway %s: %w", id, err)
	}
	return nil
}

// LeaveGateway deletes gateway id's row and with it its routes: a gateway
// that stops cleanly says so at once rather than letting its lease lapse.
func (s *Store) LeaveGateway(ctx context.Context, id string) error {
	err := s.update(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM gateways WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("removing gateway %s: %w", id, err)
	}
	return nil
}

// PruneGateways deletes the gateways whose lease ran out before before,
// and their routes, and returns how many.
func (s *Store) PruneGateways(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM gateways WHERE lease_expires < ?`, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("deleting gateways dead since before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

// ListGateways returns every gateway of the database, live or not, by ID.
func (s *Store) ListGateways(ctx context.Context) ([]GatewayLease, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, node_addresses, peer_address, started_at, lease_expires FROM gateways ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing gateways: %w", err)
	}
	defer rows.Close()
	var out []GatewayLease
	for rows.Next() {
		var g GatewayLease
		var addrs string
		var started, expires int64
		if err := rows.Scan(&g.ID, &addrs, &g.PeerAddress, &started, &expires); err != nil {
			return nil, fmt.Errorf("listing gateways: %w", err)
		}
		if err := json.Unmarshal([]byte(addrs), &g.NodeAddresses); err != nil {
			return nil, fmt.Errorf("listing gateways: the node addresses of %s: %w", g.ID, err)
		}
		g.StartedAt, g.LeaseExpires = time.Unix(0, started), time.Unix(0, expires)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing gateways: %w", err)
	}
	return out, nil
}

// Route says which gateway holds a device's session, and which session
// (the epoch that gateway attached it with).
type Route struct {
	DeviceID  identity.DeviceID
	GatewayID string
	Epoch     uint64
	// PeerAddress is where the gateway is reached (LookupRoute and
	// ListRoutes fill it in).
	PeerAddress string
}

// AddRoute records that r's gateway attached the device's session with
// r.Epoch at now. The gateway must have joined (JoinGateway).
func (s *Store) AddRoute(ctx context.Context, r Route, now time.Time) error {
	err := s.update(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO routes (device_id, gateway_id, epoch, attached_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (device_id, gateway_id, epoch) DO NOTHING`,
			dbDeviceID(r.DeviceID), r.GatewayID, int64(r.Epoch), now.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("recording that gateway %s holds node %s: %w", r.GatewayID, r.DeviceID, err)
	}
	return nil
}

// RemoveRoute deletes the route of exactly r's device, gateway and epoch:
// a session detaching removes its own route, never a newer one.
func (s *Store) RemoveRoute(ctx context.Context, r Route) error {
	err := s.update(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM routes WHERE device_id = ? AND gateway_id = ? AND epoch = ?`,
			dbDeviceID(r.DeviceID), r.GatewayID, int64(r.Epoch))
		return err
	})
	if err != nil {
		return fmt.Errorf("removing the route of node %s through gateway %s: %w", r.DeviceID, r.GatewayID, err)
	}
	return nil
}

// liveRoutes selects, per device, the newest route of a gateway whose
// lease runs at the time given as its first argument.
const liveRoutes = `SELECT r.device_id, r.gateway_id, r.epoch, g.peer_address
	FROM routes r JOIN gateways g ON g.id = r.gateway_id
	WHERE g.lease_expires > ?1 AND r.seq = (
		SELECT MAX(r2.seq) FROM routes r2 JOIN gateways g2 ON g2.id = r2.gateway_id
		WHERE r2.device_id = r.device_id AND g2.lease_expires > ?1)`

// LookupRoute returns the route that counts for device id at now: the
// newest of a gateway whose lease is live. ErrNotFound: no gateway holds it.
func (s *Store) LookupRoute(ctx context.Context, id identity.DeviceID, now time.Time) (Route, error) {
	r, err := scanRoute(s.rdb.QueryRowContext(ctx, liveRoutes+` AND r.device_id = ?2`, now.UnixNano(), dbDeviceID(id)))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Route{}, fmt.Errorf("looking up which gateway holds node %s: %w", id, err)
	}
	return r, nil
}

// ListRoutes returns the route that counts at now of every device some
// live gateway holds.
func (s *Store) ListRoutes(ctx context.Context, now time.Time) (map[identity.DeviceID]Route, error) {
	rows, err := s.rdb.QueryContext(ctx, liveRoutes, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("listing which gateway holds which node: %w", err)
	}
	defer rows.Close()
	out := make(map[identity.DeviceID]Route)
	for rows.Next() {
		r, err := scanRoute(rows)
		if err != nil {
			return nil, fmt.Errorf("listing which gateway holds which node: %w", err)
		}
		out[r.DeviceID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing which gateway holds which node: %w", err)
	}
	return out, nil
}

func scanRoute(row interface{ Scan(...any) error }) (Route, error) {
	var r Route
	var id string
	var epoch int64
	if err := row.Scan(&id, &r.GatewayID, &epoch, &r.PeerAddress); err != nil {
		return Route{}, err
	}
	var err error
	if r.DeviceID, err = goDeviceID(id); err != nil {
		return Route{}, err
	}
	r.Epoch = uint64(epoch)
	return r, nil
}
