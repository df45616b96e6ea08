// Package auditlog writes the gateway's audit log for the paths that must
// not wait for the disk: the pairing exchange, node handshakes and direct
// invocations hand their events to a Writer, which never blocks, and its
// Run goroutine writes them in batches (one transaction each, through
// store.AuditBatch). Events wait up to EventDelay for others to join
// them (a group commit), so N calls made one after another cost a sync to
// disk every EventDelay rather than N: a crash loses at most that much of
// the rows written this way, a clean stop none (Flush).
//
// Attempts refused before the client authenticated are counted rather than
// kept one by one (Count): one row per kind, source, device and request a
// minute, so a flood of guesses costs a few rows a minute, not a row per
// guess. Memory is bounded too: once the buffer is full, events are folded
// into a count per kind and minute from the source "*" and, past a second
// bound, dropped; Config.Overflow hears of each, and the log says so.
//
// Events still buffered when Run returns are written by Flush, which the
// gateway calls once everything that produces them has stopped.
//
// It owns buffering and batching only; rows and their meaning are the
// store's.
package auditlog

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
)

// Defaults and bounds.
const (
	// DefaultMaxEvents bounds the events kept one by one while they wait.
	DefaultMaxEvents = 4096
	// DefaultMaxCounts bounds the per-minute counts that wait, one per
	// kind, source, device, request and minute.
	DefaultMaxCounts = 4096
	// maxOverflowCounts bounds the counts of folded events (source "*"),
	// one per kind and minute; past it events are dropped.
	maxOverflowCounts = 512
	// DefaultCountInterval is the least time between two writes that
	// only update counts: a flood costs one small transaction per
	// interval.
	DefaultCountInterval = time.Second
	// DefaultEventDelay is how long the first event of a batch waits for
	// others before it is written. A sync to disk takes a few
	// milliseconds, a call on loopback a fraction of one, so sequential
	// calls fill a batch.
	DefaultEventDelay = 50 * time.Millisecond
	// retryStart and retryMax bound the wait before writing again after a
	// failed write (a locked or failing store).
	retryStart = time.Second
	retryMax   = 30 * time.Second
)

// OverflowSource is the source of the rows that count the events the
// writer could not hold as they were.
const OverflowSource = "*"

// overflowDetail is the detail of those rows.
const overflowDetail = "more events than the audit writer could hold one by one; counted here"

// Outcomes Config.Overflow hears.
const (
	OutcomeFolded  = "folded"  // counted in a row of its kind from OverflowSource
	OutcomeDropped = "dropped" // not written at all
)

// Store is what the writer needs of the gateway's store.
type Store interface {
	AuditBatch(ctx context.Context, events []store.AuditEvent) error
}

// Config configures a Writer.
type Config struct {
	Store Store
	// Now stamps events that have no time, and picks their minute; nil
	// means time.Now. (How often the writer writes is wall time.)
	Now    func() time.Time
	Logger *slog.Logger
	// MaxEvents and MaxCounts bound the buffer; zero means the defaults.
	MaxEvents, MaxCounts int
	// CountInterval is the least time between writes of counts alone;
	// zero means DefaultCountInterval.
	CountInterval time.Duration
	// EventDelay is how long the first event of a batch waits for others
	// (a batch half as large as MaxEvents is written at once); zero means
	// DefaultEventDelay.
	EventDelay time.Duration
	// Overflow, if set, hears of the events the buffer could not hold as
	// they were: n of them, OutcomeFolded or OutcomeDropped. It is called
	// with the writer's lock held and must not block.
	Overflow func(outcome string, n int)
}

// key identifies a count: the event's kind, source, device, request and
// minute.
type key struct {
	kind, source, requestID string
	device                  identity.DeviceID
	minute                  int64
}

// Writer buffers audit events and writes them in the background. It is safe
// for concurrent use.
type Writer struct {
	cfg Config
	log *slog.Logger
	// eventc and countc say that events, or counts only, wait.
	eventc, countc chan struct{}
	// writeMu serializes writes (Run's and Flush's).
	writeMu sync.Mutex

	// mu guards the buffer below.
	mu       sync.Mutex
	events   []store.AuditEvent
	counts   map[key]*store.AuditEvent
	overflow int // counts from OverflowSource in counts
	// folded and dropped count since the last write, for its log line.
	folded, dropped int
}

// New returns a Writer for cfg; Run writes what it is given.
func New(cfg Config) (*Writer, error) {
	if cfg.Store == nil {
		return nil, errors.New("auditlog: Config.Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxCounts <= 0 {
		cfg.MaxCounts = DefaultMaxCounts
	}
	if cfg.CountInterval <= 0 {
		cfg.CountInterval = DefaultCountInterval
	}
	if cfg.EventDelay <= 0 {
		cfg.EventDelay = DefaultEventDelay
	}
	return &Writer{
		cfg:    cfg,
		log:    cfg.Logger,
		eventc: make(chan struct{}, 1),
		countc: make(chan struct{}, 1),
		counts: make(map[key]*store.AuditEvent),
	}, nil
}

// Record queues e to be written as it is. It never blocks: when the buffer
// is full, e is counted with the others of its kind that minute instead.
func (w *Writer) Record(e store.AuditEvent) {
	if e.At.IsZero() {
		e.At = w.cfg.Now()
	}
	w.mu.Lock()
	if len(w.events) < w.cfg.MaxEvents {
		w.events = append(w.events, e)
		w.mu.Unlock()
		signal(w.eventc)
		return
	}
	w.foldLocked(e, 1)
	w.mu.Unlock()
	signal(w.countc)
}

// Count queues e to be counted with the events like it (same kind, source,
// device and request) in its minute, in one row whose detail is the first
// one's. It is for attempts refused before the client authenticated, which
// a client can repeat as fast as it likes. It never blocks.
func (w *Writer) Count(e store.AuditEvent) {
	if e.At.IsZero() {
		e.At = w.cfg.Now()
	}
	w.mu.Lock()
	w.countLocked(e, 1)
	w.mu.Unlock()
	signal(w.countc)
}

// countLocked adds n events like e to their count, folding or dropping
// them when there is no room for a new count; w.mu is held.
func (w *Writer) countLocked(e store.AuditEvent, n int) {
	k := keyOf(e)
	if c, ok := w.counts[k]; ok {
		c.Count += n
		return
	}
	if len(w.counts)-w.overflow >= w.cfg.MaxCounts {
		w.foldLocked(e, n)
		return
	}
	c := e
	c.Aggregated, c.Count, c.At = true, n, e.At.Truncate(time.Minute)
	w.counts[k] = &c
}

// foldLocked counts n events like e in the overflow row of their kind and
// minute, or drops them when even those are full; w.mu is held.
func (w *Writer) foldLocked(e store.AuditEvent, n int) {
	if w.overflowLocked(e, n) {
		w.folded += n
		w.report(OutcomeFolded, n)
	}
}

// overflowLocked adds n events like e to the overflow row of their kind and
// minute and reports true, or drops them (reported) when there is no room
// for that row; w.mu is held.
func (w *Writer) overflowLocked(e store.AuditEvent, n int) bool {
	minute := e.At.Truncate(time.Minute)
	k := key{kind: e.Kind, source: OverflowSource, minute: minute.UnixNano()}
	c, ok := w.counts[k]
	switch {
	case ok:
		c.Count += n
	case w.overflow < maxOverflowCounts:
		w.counts[k] = &store.AuditEvent{At: minute, Kind: e.Kind, Source: OverflowSource, Detail: overflowDetail,
			Count: n, Aggregated: true}
		w.overflow++
	default:
		w.dropped += n
		w.report(OutcomeDropped, n)
		return false
	}
	return true
}

func (w *Writer) report(outcome string, n int) {
	if w.cfg.Overflow != nil {
		w.cfg.Overflow(outcome, n)
	}
}

func keyOf(e store.AuditEvent) key {
	return key{kind: e.Kind, source: e.Source, requestID: e.RequestID, device: e.DeviceID,
		minute: e.At.Truncate(time.Minute).UnixNano()}
}

// Source is the source the audit log names a client by: its IP address
// (not the port, which a client changes with every connection), or "" for
// no address.
func Source(addr net.Addr) string {
	switch a := addr.(type) {
	case nil:
		return ""
	case *net.TCPAddr:
		if a != nil {
			return a.IP.String()
		}
		return ""
	case *net.UDPAddr:
		if a != nil {
			return a.IP.String()
		}
		return ""
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}

// signal wakes Run without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run writes what is queued until ctx ends: events within EventDelay of
// the first of a batch (at once when half of MaxEvents wait), counts at
// most once per CountInterval. A failed write is tried again, after a
// wait that grows from a second to half a minute. What is still queued
// when ctx ends stays for Flush.
func (w *Writer) Run(ctx context.Context) error {
	var last time.Time // wall time of the last write
	var timer *time.Timer
	var due <-chan time.Time
	var dueAt time.Time
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		timer, due = nil, nil
	}
	// writeWithin has the next write happen within wait, or sooner if one
	// is due sooner already.
	writeWithin := func(wait time.Duration) {
		at := time.Now().Add(wait)
		if due != nil && !at.Before(dueAt) {
			return
		}
		stopTimer()
		timer, dueAt = time.NewTimer(wait), at
		due = timer.C
	}
	defer stopTimer()
	retry := retryStart
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.eventc:
			if w.queuedEvents() < w.cfg.MaxEvents/2 {
				writeWithin(w.cfg.EventDelay)
				continue
			}
		case <-w.countc:
			if wait := w.cfg.CountInterval - time.Since(last); wait > 0 {
				writeWithin(wait)
				continue
			}
		case <-due:
		}
		stopTimer()
		last = time.Now()
		if err := w.Flush(ctx); err == nil {
			retry = retryStart
			continue
		} else if ctx.Err() != nil {
			return nil
		} else {
			w.log.Error("writing the audit log; trying again", "err", err, "in", retry)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		retry = min(2*retry, retryMax)
		signal(w.eventc)
	}
}

// queuedEvents is how many events wait to be written one by one.
func (w *Writer) queuedEvents() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// Flush writes everything queued now in one transaction. When the write
// fails, what it held is queued again (within the bounds) and the error
// returned.
func (w *Writer) Flush(ctx context.Context) error {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	w.mu.Lock()
	events, counts := w.events, w.counts
	folded, dropped := w.folded, w.dropped
	w.events, w.counts, w.overflow, w.folded, w.dropped = nil, make(map[key]*store.AuditEvent), 0, 0, 0
	w.mu.Unlock()
	if folded > 0 || dropped > 0 {
		w.log.Warn("the audit writer fell behind: events counted per kind and minute instead of one by one, or dropped",
			"folded", folded, "dropped", dropped)
	}
	if len(events) == 0 && len(counts) == 0 {
		return nil
	}
	batch := make([]store.AuditEvent, 0, len(events)+len(counts))
	batch = append(batch, events...)
	for _, c := range counts {
		batch = append(batch, *c)
	}
	err := w.cfg.Store.AuditBatch(ctx, batch)
	if err == nil {
		return nil
	}
	// Nothing was written: the transaction rolled back.
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := append(events, w.events...)
	w.events = nil
	for _, e := range kept {
		if len(w.events) < w.cfg.MaxEvents {
			w.events = append(w.events, e)
		} else {
			w.foldLocked(e, 1)
		}
	}
	for _, c := range counts {
		if c.Source == OverflowSource {
			w.overflowLocked(*c, c.Count) // reported when first folded
		} else {
			w.countLocked(*c, c.Count)
		}
	}
	return err
}
