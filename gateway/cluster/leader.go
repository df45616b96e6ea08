package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// SweeperLockKey names the advisory lock the sweeping gateway holds
// ("palyrasw" in ASCII; the store's migrations use another key).
const SweeperLockKey = 0x70616c7972617377

// DefaultLeaderRetry is LeaderConfig.Retry's default.
const DefaultLeaderRetry = 5 * time.Second

// LeaderConfig configures a Leader.
type LeaderConfig struct {
	// Dial opens the connection that holds the lock. Required.
	Dial Dial
	// Key is the advisory lock's key; zero: SweeperLockKey.
	Key int64
	// Retry is how often a gateway without the lock tries to take it, and
	// how often the one holding it checks that its connection still
	// works; zero: DefaultLeaderRetry.
	Retry time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Leader runs a job on one gateway of a database at a time: the one
// whose dedicated connection holds a session-level advisory lock
// (pg_try_advisory_lock). PostgreSQL releases the lock when that
// connection ends (the gateway stopped or died, the connection was cut or
// terminated); the others try again every Retry, and one of them takes
// over. The gateway that held it notices within Retry, when it checks its
// connection, and stops its job: until then two may run it, so the job
// must do no harm when run twice.
type Leader struct {
	cfg     LeaderConfig
	log     *slog.Logger
	leading atomic.Bool
}

// NewLeader checks cfg.
func NewLeader(cfg LeaderConfig) (*Leader, error) {
	switch {
	case cfg.Dial == nil:
		return nil, errors.New("cluster: LeaderConfig needs Dial")
	case cfg.Retry < 0:
		return nil, fmt.Errorf("cluster: LeaderConfig.Retry is negative (%v)", cfg.Retry)
	}
	if cfg.Key == 0 {
		cfg.Key = SweeperLockKey
	}
	if cfg.Retry == 0 {
		cfg.Retry = DefaultLeaderRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Leader{cfg: cfg, log: cfg.Logger}, nil
}

// Leading reports whether this gateway holds the lock and runs the job.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Run takes part in the election until ctx ends, running job while it
// holds the lock, on a context that ends when it loses the lock (or ctx
// ends). If job returns by itself with an error, Run returns it.
func (l *Leader) Run(ctx context.Context, job func(context.Context) error) error {
	down := false // the database could not be reached, and that was logged
	for ctx.Err() == nil {
		conn, err := l.cfg.Dial(ctx)
		if err != nil {
			if ctx.Err() == nil && !down {
				l.log.Warn("cannot reach the database to take part in choosing the sweeper; retrying", "err", err)
				down = true
			}
			sleep(ctx, l.cfg.Retry)
			continue
		}
		if down {
			l.log.Info("reached the database again to take part in choosing the sweeper")
			down = false
		}
		err = l.contend(ctx, conn, job)
		closeConn(conn)
		var jobErr jobError
		if errors.As(err, &jobErr) {
			return jobErr.err
		}
		if ctx.Err() == nil {
			l.log.Warn("lost the connection of the sweeper lock; reconnecting", "err", err)
			sleep(ctx, l.cfg.Retry)
		}
	}
	return nil
}

// jobError is the job's own error, which ends Run.
type jobError struct{ err error }

func (e jobError) Error() string { return e.err.Error() }

// contend tries for the lock on conn every Retry, and leads once it has
// it, until conn fails or ctx ends.
func (l *Leader) contend(ctx context.Context, conn *pgx.Conn, job func(context.Context) error) error {
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.cfg.Key).Scan(&got); err != nil {
			return fmt.Errorf("trying for advisory lock %d: %w", l.cfg.Key, err)
		}
		if got {
			return l.lead(ctx, conn, job)
		}
		if !sleep(ctx, l.cfg.Retry) {
			return ctx.Err()
		}
	}
}

// lead runs job while conn, which holds the lock, works.
func (l *Leader) lead(ctx context.Context, conn *pgx.Conn, job func(context.Context) error) error {
	jobCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	l.leading.Store(true)
	l.log.Info("this gateway is the sweeper now: it holds the sweeper lock", "lock", l.cfg.Key)
	go func() { done <- job(jobCtx) }()
	end := func(why string) {
		stop()
		<-done
		l.leading.Store(false)
		if why != "" {
			l.log.Warn("this gateway is no longer the sweeper: " + why)
		}
	}
	tick := time.NewTicker(l.cfg.Retry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			end("")
			return ctx.Err()
		case err := <-done:
			l.leading.Store(false)
			if ctx.Err() != nil {
				// It ended with ctx, which this select saw second.
				return ctx.Err()
			}
			if err == nil {
				err = errors.New("the sweeper stopped")
			}
			return jobError{err}
		case <-tick.C:
			ping, cancel := context.WithTimeout(ctx, pingTimeout)
			err := conn.Ping(ping)
			cancel()
			if err != nil && ctx.Err() == nil {
				end("its lock's connection failed, which released the lock")
				return fmt.Errorf("checking the connection of the sweeper lock: %w", err)
			}
		}
	}
}
