// Package registrations writes node registrations to the store in group
// commits. A registration must be durable before its node is welcomed, so
// its caller waits; but a storm of reconnects would otherwise make one
// write transaction, each with its sync to disk, per node, one after the
// other on the store's single writer, and everything else that writes or
// reads behind it would wait too. A Writer commits as soon as the store is
// free, with every registration that queued while the previous commit ran,
// in one transaction (store.UpsertNodes): a lone registration is written
// at once, and N arriving together cost a few commits, not N.
//
// Each caller gets its own registration's outcome: a revoked or unknown
// device is refused alone, while a failure of the store fails the whole
// batch (every caller in it hears that error). A caller whose context ends
// first stops waiting; its registration, if already taken into a batch,
// may still be written, which is harmless (it is what the node said about
// itself).
//
// It owns the batching only; rows and their meaning are the store's. It
// must not import the carriers, networking or UI packages.
package registrations

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/palyra/palyra-go/gateway/store"
)

// Defaults.
const (
	// DefaultMaxBatch bounds the registrations in one transaction. Every
	// caller of a batch waits for all of it (each registration is a few
	// statements), so a long one would hold the first in it up, on a slow
	// disk past the node's wait for its welcome; 64 already share one
	// sync to disk among 64.
	DefaultMaxBatch = 64
	// DefaultWriteTimeout bounds one batch's transaction. Callers wait
	// within their own contexts; this only keeps a store that hangs from
	// holding the writer forever.
	DefaultWriteTimeout = 30 * time.Second
)

// Store is what a Writer needs of the gateway's store.
type Store interface {
	// UpsertNodes records nodes in one transaction: outcomes[i] is
	// nodes[i]'s, err a failure of the store for them all.
	UpsertNodes(ctx context.Context, nodes []store.Node) (outcomes []error, err error)
}

// Config configures a Writer.
type Config struct {
	Store Store
	// MaxBatch bounds the registrations in one transaction; zero means
	// DefaultMaxBatch.
	MaxBatch int
	// WriteTimeout bounds one transaction; zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Writer queues registrations and writes them in group commits. It has no
// goroutine of its own while idle: the first registration to find nobody
// writing starts one, which writes batches until the queue is empty. It is
// safe for concurrent use.
type Writer struct {
	cfg Config

	// mu guards the fields below.
	mu sync.Mutex
	// queue holds the registrations not yet taken into a batch.
	queue []*pending
	// writing is set while a goroutine writes batches; batch is how many
	// registrations the one being written holds.
	writing bool
	batch   int
}

// pending is one caller's registration.
type pending struct {
	ctx  context.Context
	node store.Node
	// done gets the outcome; buffered, so the writer never waits for a
	// caller that stopped waiting.
	done chan error
}

// New returns a Writer for cfg.
func New(cfg Config) (*Writer, error) {
	if cfg.Store == nil {
		return nil, errors.New("registrations: Config.Store is required")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	return &Writer{cfg: cfg}, nil
}

// Upsert records n's registration with the others that queue with it and
// returns its own outcome: nil once it is committed; an error wrapping
// store.ErrDeviceRevoked or store.ErrNotFound for this device alone; the
// store's error when the batch could not be written; or ctx's when it
// ended first.
func (w *Writer) Upsert(ctx context.Context, n store.Node) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storing node %s: %w", n.DeviceID, err)
	}
	p := &pending{ctx: ctx, node: n, done: make(chan error, 1)}
	w.mu.Lock()
	w.queue = append(w.queue, p)
	start := !w.writing
	w.writing = true
	w.mu.Unlock()
	if start {
		go w.drain()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("storing node %s: %w", n.DeviceID, context.Cause(ctx))
	}
}

// Waiting is how many registrations wait to be committed: queued, or in
// the transaction under way (for metrics, and tests of batching).
func (w *Writer) Waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) + w.batch
}

// drain writes batches until the queue is empty.
func (w *Writer) drain() {
	for {
		batch := w.take()
		if batch == nil {
			return
		}
		w.write(batch)
	}
}

// take removes up to MaxBatch registrations from the queue, skipping those
// whose callers stopped waiting; with none left it clears writing and
// returns nil.
func (w *Writer) take() []*pending {
	w.mu.Lock()
	defer w.mu.Unlock()
	var batch []*pending
	for len(w.queue) > 0 && len(batch) < w.cfg.MaxBatch {
		p := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		if p.ctx.Err() == nil {
			batch = append(batch, p)
		}
	}
	if len(w.queue) == 0 {
		w.queue = nil // let the array of a long queue go
	}
	if batch == nil {
		w.writing = false
	}
	w.batch = len(batch)
	return batch
}

// write commits one batch and tells each caller its outcome.
func (w *Writer) write(batch []*pending) {
	nodes := make([]store.Node, len(batch))
	for i, p := range batch {
		nodes[i] = p.node
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.WriteTimeout)
	defer cancel()
	outcomes, err := w.cfg.Store.UpsertNodes(ctx, nodes)
	for i, p := range batch {
		switch {
		case err != nil:
			p.done <- err
		case i < len(outcomes):
			p.done <- outcomes[i]
		default:
			p.done <- fmt.Errorf("storing node %s: the store gave %d outcomes for %d nodes", p.node.DeviceID, len(outcomes), len(nodes))
		}
	}
}
