// Package presence keeps the last-seen time of the gateway's connected
// nodes in memory and writes it to the store in batches: every lease
// renewal updates memory only (so a grant never waits for the disk), and
// Run writes every node whose time changed in one transaction per
// Interval. A node that goes away is written at once (with the others
// waiting then, in one transaction), and Flush writes what is left when
// the gateway stops, so a clean stop loses nothing; a crash loses at most
// one Interval of last-seen times (the nodes' registrations are written
// when they happen).
//
// It owns the batching only; the rows are the store's. It must not import
// the carriers, networking or UI packages.
package presence

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// DefaultInterval is how often changed last-seen times are written. A node
// renews its lease every third of it (10 s by default), so the store is at
// most this far behind a connected node.
const DefaultInterval = 5 * time.Second

// retryMax bounds the wait after a failed write; the interval is the
// first wait.
const retryMax = time.Minute

// Store is what a Tracker needs of the gateway's store.
type Store interface {
	TouchNodes(ctx context.Context, lastSeen map[identity.DeviceID]time.Time) error
}

// Config configures a Tracker.
type Config struct {
	Store Store
	// Interval is how often changed times are written; zero means
	// DefaultInterval.
	Interval time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Tracker holds the last-seen times not yet written. It is safe for
// concurrent use.
type Tracker struct {
	cfg Config
	// gone says a node went away: write soon, not at the next interval.
	gone chan struct{}
	// writeMu serializes writes (Run's and Flush's).
	writeMu sync.Mutex

	// mu guards the maps below.
	mu sync.Mutex
	// pending holds the times not yet handed to the store, one per device
	// (memory is bounded by the devices that were seen); writing holds
	// those of the write under way, so LastSeen still knows them.
	pending, writing map[identity.DeviceID]time.Time
}

// New returns a Tracker for cfg; Run writes what it is told.
func New(cfg Config) (*Tracker, error) {
	if cfg.Store == nil {
		return nil, errors.New("presence: Config.Store is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Tracker{
		cfg:     cfg,
		gone:    make(chan struct{}, 1),
		pending: make(map[identity.DeviceID]time.Time),
	}, nil
}

// Seen notes that device id was seen at at (a lease renewal). It never
// blocks on the store.
func (t *Tracker) Seen(id identity.DeviceID, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.noteLocked(id, at)
}

// Gone notes that device id went away at at, and has it written without
// waiting for the interval. It never blocks on the store.
func (t *Tracker) Gone(id identity.DeviceID, at time.Time) {
	t.Seen(id, at)
	select {
	case t.gone <- struct{}{}:
	default:
	}
}

// noteLocked keeps the later of at and the time pending for id; t.mu is
// held.
func (t *Tracker) noteLocked(id identity.DeviceID, at time.Time) {
	if cur, ok := t.pending[id]; !ok || at.After(cur) {
		t.pending[id] = at
	}
}

// LastSeen returns the time of device id not yet in the store, if there is
// one: a view of the store is as fresh as memory with it.
func (t *Tracker) LastSeen(id identity.DeviceID) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.pending[id]
	if w, wok := t.writing[id]; wok && (!ok || w.After(at)) {
		at, ok = w, true
	}
	return at, ok
}

// Run writes the changed times every Interval, and soon after a node went
// away, until ctx ends; what is left then is for Flush. A failed write is
// kept and tried again after a wait that doubles up to a minute.
func (t *Tracker) Run(ctx context.Context) error {
	wait := t.cfg.Interval
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-t.gone:
			timer.Stop()
		}
		if err := t.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = min(2*wait, retryMax)
			t.cfg.Logger.Error("recording node presence; trying again", "err", err, "in", wait)
		} else {
			wait = t.cfg.Interval
		}
		timer.Reset(wait)
	}
}

// Flush writes every time not yet written, in one transaction. When the
// write fails the times stay queued (a newer one for the same device wins)
// and the error is returned.
func (t *Tracker) Flush(ctx context.Context) error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.mu.Lock()
	batch := t.pending
	if len(batch) == 0 {
		t.mu.Unlock()
		return nil
	}
	t.pending, t.writing = make(map[identity.DeviceID]time.Time), batch
	t.mu.Unlock()
	err := t.cfg.Store.TouchNodes(ctx, batch)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writing = nil
	if err != nil {
		for id, at := range batch {
			t.noteLocked(id, at)
		}
	}
	return err
}
