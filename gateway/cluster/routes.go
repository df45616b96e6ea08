package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/palyra/palyra-go/gateway/store"
)

// routeWriter writes routes in the background, in the order sessions
// attach and detach, so the presence calls that tell it (under the session
// registry's lock) never wait for the database. A detach of a session whose
// attach was not tried yet cancels both, so a session that never reached
// the database costs nothing there; a write that fails is tried again, in order, until it
// succeeds or the gateway stops (its routes then go with its row).
type routeWriter struct {
	store Store
	id    string
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	pending []routeOp
	wake    chan struct{}
}

type routeOp struct {
	s   Session
	add bool
	// tried: a write was attempted, which may have committed even if it
	// failed, so its detach must be written too.
	tried bool
}

func newRouteWriter(s Store, id string, now func() time.Time, log *slog.Logger) *routeWriter {
	return &routeWriter{store: s, id: id, now: now, log: log, wake: make(chan struct{}, 1)}
}

func (w *routeWriter) attached(s Session) { w.push(routeOp{s: s, add: true}) }

func (w *routeWriter) detached(s Session) {
	w.mu.Lock()
	for i, op := range w.pending {
		if op.add && op.s == s && !op.tried {
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
			w.mu.Unlock()
			return
		}
	}
	w.mu.Unlock()
	w.push(routeOp{s: s})
}

func (w *routeWriter) push(op routeOp) {
	w.mu.Lock()
	w.pending = append(w.pending, op)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes the queue until ctx ends.
func (w *routeWriter) run(ctx context.Context) {
	// Every gateway retries with jitter, so that after the database comes
	// back they do not all write at once.
	failures := 0
	for {
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			continue
		}
		w.pending[0].tried = true
		op := w.pending[0]
		w.mu.Unlock()
		r := store.Route{DeviceID: op.s.DeviceID, GatewayID: w.id, Epoch: op.s.Epoch}
		var err error
		if op.add {
			err = w.store.AddRoute(ctx, r, w.now())
		} else {
			err = w.store.RemoveRoute(ctx, r)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := DefaultBackoff.wait(failures)
			w.log.Error("writing a route; trying again", "device", r.DeviceID, "epoch", r.Epoch, "attach", op.add, "err", err, "in", wait)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		failures = 0
		w.mu.Lock()
		w.pending = w.pending[1:]
		w.mu.Unlock()
	}
}
