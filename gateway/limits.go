package gateway

import (
	"fmt"
	"time"

	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/internal/connlimit"
)

// Connection limits, by default; README.md ("Security limits") lists them
// with their flags.
const (
	// DefaultHandshakeTimeout bounds a TCP connection's TLS and HTTP/2
	// handshake (grpc.ConnectionTimeout, 120 s in gRPC itself): a few round
	// trips even on a slow link, and a connection that sends nothing is
	// closed after it.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a TCP connection that has had no RPC in
	// progress for this long (gRPC's MaxConnectionIdle, a GOAWAY and then
	// the close). It reaches the connections that did not authenticate: a
	// pairing device starts its exchange at once and holds its stream
	// open while it waits for approval, and a node on gRPC always has its
	// StreamEvents open.
	DefaultIdleTimeout = 20 * time.Second
	// DefaultMaxUnauthenticatedConns caps the TCP connections not (yet)
	// authenticated by a device certificate: pairing devices, and every
	// connection until its handshake. It is lowered to fit the open-file
	// limit (connlimit.Size).
	DefaultMaxUnauthenticatedConns = 1024
	// DefaultMaxQUICHandshakes caps the QUIC handshakes in progress: at
	// about 48 KB each in quic-go, 24 MB at most.
	DefaultMaxQUICHandshakes = 512
	// DefaultMaxAdmittingNodes, 0, is no cap on the registrations in
	// progress until a cap is shown to help: a node is told "busy" only
	// after its handshake, so each return of a refused node costs the
	// gateway another handshake, and the runs of `palyra bench --phases
	// storm --nodes 2000` with a cap of 256 did no better than without
	// (on a shared 2-core machine, where both also failed now and then
	// to connect 2,000 nodes at once within the bench's 50 s). A restart
	// is spread by the GoAway window instead; set a cap where the store,
	// not the CPU, is what makes registrations wait.
	DefaultMaxAdmittingNodes = 0
	// sourceShare: by default one source may hold 1/16 of a cap, so that
	// it takes at least 16 sources (IPv4 addresses or IPv6 /64s) to fill
	// it.
	sourceShare = 16
	// retryThresholdPart: by default a QUIC handshake needs a Retry once
	// half the cap is in progress, which is all a flood from spoofed
	// addresses can hold (about 12 MB, for the 5 s of a handshake's
	// timeout). It was 1/8: then in a restart every returning node past
	// 64 made two Initials instead of one, and quic-go's one goroutine
	// that takes every new connection's packets, behind a queue of 1,024,
	// fell behind on 2 cores. In a storm of 5,000 nodes (`palyra bench
	// --phases storm --nodes 5000`) it dropped 1,679 packets for a full
	// queue, and 4,551 handshakes heard nothing for 3 s; with half, none
	// dropped and 1,510 timed out, all back in 24.4 s instead of 29.3 s.
	retryThresholdPart = 2
)

// limits are the connection limits a gateway runs with, resolved from its
// Config; a cap of 0 is none.
type limits struct {
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	unauthenticated  int
	perSource        int
	quic             quiccarrier.Limits
}

// resolveLimits fills in cfg's defaults and checks what was asked for,
// under the open-file limit fileLimit (0: unknown).
func resolveLimits(cfg Config, fileLimit uint64) (limits, error) {
	l := limits{handshakeTimeout: cfg.HandshakeTimeout, idleTimeout: cfg.IdleTimeout}
	if l.handshakeTimeout <= 0 {
		l.handshakeTimeout = DefaultHandshakeTimeout
	}
	if l.idleTimeout <= 0 {
		l.idleTimeout = DefaultIdleTimeout
	}
	var err error
	if l.unauthenticated, err = connlimit.Size("unauthenticated TCP connections", cfg.MaxUnauthenticatedConns,
		DefaultMaxUnauthenticatedConns, fileLimit); err != nil {
		return l, fmt.Errorf("gateway: %w", err)
	}
	l.perSource = capOf(cfg.MaxUnauthenticatedConnsPerSource, fraction(l.unauthenticated, sourceShare))
	if cfg.MaxUnauthenticatedConnsPerSource > 0 && l.unauthenticated > 0 && l.perSource >= l.unauthenticated {
		return l, fmt.Errorf("gateway: a cap of %d unauthenticated TCP connections per source is not below the cap of %d in all: it must be, or one source could take every slot",
			l.perSource, l.unauthenticated)
	}

	q := &l.quic
	q.MaxHandshakes = capOf(cfg.MaxQUICHandshakes, DefaultMaxQUICHandshakes)
	q.MaxHandshakesPerSource = capOf(cfg.MaxQUICHandshakesPerSource, fraction(q.MaxHandshakes, sourceShare))
	if cfg.MaxQUICHandshakesPerSource > 0 && q.MaxHandshakes > 0 && q.MaxHandshakesPerSource >= q.MaxHandshakes {
		return l, fmt.Errorf("gateway: a cap of %d QUIC handshakes per source is not below the cap of %d in all: it must be, or one source could take every slot",
			q.MaxHandshakesPerSource, q.MaxHandshakes)
	}
	q.HandshakeTimeout = quiccarrier.DefaultHandshakeTimeout
	q.RetryThreshold = capOf(cfg.QUICRetryThreshold, fraction(q.MaxHandshakes, retryThresholdPart))
	if cfg.QUICRetryThreshold > 0 && q.MaxHandshakes > 0 && q.RetryThreshold >= q.MaxHandshakes {
		return l, fmt.Errorf("gateway: a QUIC Retry threshold of %d handshakes is not below the cap of %d handshakes in progress: it must be, or the cap refuses clients that a Retry would have sorted out",
			q.RetryThreshold, q.MaxHandshakes)
	}
	return l, nil
}

// capOf is the cap asked for (want; negative: none, 0) or else def.
func capOf(want, def int) int {
	switch {
	case want < 0:
		return 0
	case want == 0:
		return def
	}
	return want
}

// fraction is 1/n of the cap total, at least 1; none of none.
func fraction(total, n int) int {
	if total == 0 {
		return 0
	}
	return max(1, total/n)
}
