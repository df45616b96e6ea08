// Package cluster is what gateways sharing one PostgreSQL database agree on
// outside the request path of one gateway:
//
//   - Cluster is how they know each other and reach the nodes the others
//     hold. Each gateway keeps a lease on its row of the gateways table
//     (renewed every RenewInterval) and writes a route when a node's
//     session attaches to it and removes it when it detaches. A call that
//     reaches a gateway for a node another gateway holds is forwarded
//     there: over QUIC, on the holder's own node port under the peer ALPN
//     (quiccarrier.Peers), with mutual TLS between gateway peer
//     certificates of the shared CA, one stream per call carrying the call
//     and the session epoch its route named. The holder refuses a call
//     whose epoch is not its session's; the caller then reads the route
//     again, once. At each renewal a gateway also reads where nodes reach
//     the other live gateways (NodeAddresses), which it tells the nodes
//     it pairs and welcomes, so that they can fail over to any of them.
//   - Revocations follows the database's revocations over a connection of
//     its own (not from the store's pool, whose connections come and go):
//     it listens for the store's notifications (store.RevocationChannel)
//     and, on each one and after every (re)connect, reads the revocations
//     numbered above the last it applied and hands each to the gateway,
//     which closes that device's sessions. A revocation made on any gateway
//     thus closes the device's sessions on all of them at once; the
//     handshake check against the store stays the last line.
//   - Leader runs the gateway's sweeps on one gateway at a time: the one
//     holding a session-level advisory lock, which PostgreSQL releases
//     when that connection ends, so another gateway takes over.
//
// On SQLite a gateway is alone and none of this runs. It must not import
// the carriers, the dispatcher or UI packages: it reaches the node runtime
// through its Local interface and the database through the store.
package cluster

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// Dial opens a dedicated connection (store.Dialer makes one).
type Dial func(context.Context) (*pgx.Conn, error)

// Backoff is how long to wait before reconnecting after a failure: Min
// after the first, doubling up to Max, each wait drawn at random from its
// upper half so that gateways that lost the database together do not
// come back in step.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is the backoff of a Config that leaves it zero.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}

func (b Backoff) orDefault() Backoff {
	if b.Min <= 0 || b.Max < b.Min {
		return DefaultBackoff
	}
	return b
}

// wait is the pause before attempt (1, 2, …).
func (b Backoff) wait(attempt int) time.Duration {
	d := b.Max
	if attempt < 32 {
		d = min(b.Max, b.Min<<(attempt-1))
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// pingTimeout bounds checking that a dedicated connection still works.
const pingTimeout = 5 * time.Second

// closeTimeout bounds closing a connection (its Terminate message).
const closeTimeout = time.Second

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
