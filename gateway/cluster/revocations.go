package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/palyra/palyra-go/gateway/store"
)

// RevocationSource reads revocations by sequence number (*store.Store).
type RevocationSource interface {
	RevocationsAfter(ctx context.Context, after int64, limit int) ([]store.Revocation, error)
}

// RevocationsConfig configures Revocations.
type RevocationsConfig struct {
	// Dial opens the listening connection. Required.
	Dial Dial
	// Store is where the revocations are read. Required.
	Store RevocationSource
	// After is the number of the last revocation already applied
	// (store.LastRevocation when the gateway starts: it has no sessions
	// yet).
	After int64
	// Apply closes the revoked device's sessions; it is called once per
	// revocation above After, in order, and must not block for long.
	// Required.
	Apply func(store.Revocation)
	// Backoff paces reconnecting; zero: DefaultBackoff.
	Backoff Backoff
	// IdleCheck is how long the connection may be silent before it is
	// pinged, so that a connection that died without a word is noticed;
	// zero: DefaultIdleCheck.
	IdleCheck time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultIdleCheck is RevocationsConfig.IdleCheck's default.
const DefaultIdleCheck = 30 * time.Second

// readPage bounds the revocations read at once.
const readPage = 500

// Revocations follows the database's revocations (see the package doc).
type Revocations struct {
	cfg RevocationsConfig
	log *slog.Logger
	// applied is the number of the last revocation applied.
	applied atomic.Int64
	// listening is whether the connection is up and listening.
	listening atomic.Bool
	// losses counts the times the connection was lost.
	losses atomic.Uint64
}

// NewRevocations checks cfg.
func NewRevocations(cfg RevocationsConfig) (*Revocations, error) {
	switch {
	case cfg.Dial == nil, cfg.Store == nil, cfg.Apply == nil:
		return nil, errors.New("cluster: RevocationsConfig needs Dial, Store and Apply")
	case cfg.IdleCheck < 0:
		return nil, fmt.Errorf("cluster: RevocationsConfig.IdleCheck is negative (%v)", cfg.IdleCheck)
	}
	if cfg.IdleCheck == 0 {
		cfg.IdleCheck = DefaultIdleCheck
	}
	cfg.Backoff = cfg.Backoff.orDefault()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Revocations{cfg: cfg, log: cfg.Logger}
	r.applied.Store(cfg.After)
	return r, nil
}

// Applied is the number of the last revocation applied.
func (r *Revocations) Applied() int64 { return r.applied.Load() }

// Listening reports whether the listening connection is up.
func (r *Revocations) Listening() bool { return r.listening.Load() }

// Losses is how many times the listening connection was lost (or could
// not be made) since Run began: once per outage, however many attempts it
// took to reconnect.
func (r *Revocations) Losses() uint64 { return r.losses.Load() }

// Run listens until ctx ends, reconnecting with backoff whenever the
// connection fails. An outage is logged once, when it begins, and once
// more when it ends.
func (r *Revocations) Run(ctx context.Context) error {
	down := false // an outage is going on, and was logged
	for attempt := 1; ; attempt++ {
		err := r.listen(ctx, func() {
			attempt = 0
			if down {
				r.log.Info("listening for revocations again, and applied those made meanwhile", "applied", r.Applied())
				down = false
			}
		})
		r.listening.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if !down {
			r.losses.Add(1)
			r.log.Warn("lost the connection that listens for revocations made on other gateways; reconnecting "+
				"(until then they close sessions here only at the next handshake)", "err", err)
			down = true
		}
		if !sleep(ctx, r.cfg.Backoff.wait(max(attempt, 1))) {
			return nil
		}
	}
}

// listen connects, listens, catches up, and then catches up on every
// notification until the connection or ctx fails. up is called once it
// listens and has caught up.
func (r *Revocations) listen(ctx context.Context, up func()) error {
	conn, err := r.cfg.Dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{store.RevocationChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listening on %s: %w", store.RevocationChannel, err)
	}
	r.listening.Store(true)
	// Whatever was revoked while nobody here listened.
	if err := r.catchUp(ctx); err != nil {
		return err
	}
	up()
	for {
		wait, cancel := context.WithTimeout(ctx, r.cfg.IdleCheck)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && errors.Is(wait.Err(), context.DeadlineExceeded):
			// Silent for IdleCheck: a timeout leaves the connection
			// usable; check that it still reaches the server.
			ping, cancel := context.WithTimeout(ctx, pingTimeout)
			err = conn.Ping(ping)
			cancel()
			if err != nil {
				return fmt.Errorf("checking the listening connection: %w", err)
			}
			continue
		case err != nil:
			return fmt.Errorf("waiting for notifications: %w", err)
		}
		// Several notifications may come for revocations one read has
		// applied already.
		if seq, err := strconv.ParseInt(n.Payload, 10, 64); err == nil && seq <= r.Applied() {
			continue
		}
		if err := r.catchUp(ctx); err != nil {
			return err
		}
	}
}

// catchUp applies the revocations numbered above the last one applied.
func (r *Revocations) catchUp(ctx context.Context) error {
	for {
		after := r.Applied()
		revs, err := r.cfg.Store.RevocationsAfter(ctx, after, readPage)
		if err != nil {
			return err
		}
		for _, rev := range revs {
			r.cfg.Apply(rev)
			r.applied.Store(rev.Seq)
		}
		if len(revs) < readPage {
			return nil
		}
	}
}
