package auditlog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/auditlog"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/internal/testclock"
	"github.com/palyra/palyra-go/internal/testsqlite"
)

type fixture struct {
	path  string
	store *store.Store
	clock *testclock.Clock
	w     *auditlog.Writer

	mu       sync.Mutex
	overflow map[string]int
}

func newFixture(t *testing.T, configure func(*auditlog.Config)) *fixture {
	t.Helper()
	f := &fixture{path: filepath.Join(t.TempDir(), "gateway.db"), clock: testclock.New(), overflow: map[string]int{}}
	var err error
	// A short busy timeout: the locked-store test waits for it to pass.
	if f.store, err = store.Open(t.Context(), f.path, store.Options{Now: f.clock.Now, BusyTimeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	cfg := auditlog.Config{Store: f.store, Now: f.clock.Now, Overflow: func(outcome string, n int) {
		f.mu.Lock()
		f.overflow[outcome] += n
		f.mu.Unlock()
	}}
	if configure != nil {
		configure(&cfg)
	}
	if f.w, err = auditlog.New(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) flush(t *testing.T) {
	t.Helper()
	if err := f.w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) rows(t *testing.T) []store.AuditEvent {
	t.Helper()
	rows, err := f.store.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (f *fixture) overflowed(outcome string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overflow[outcome]
}

// total sums the counts of the rows of kind, by source.
func total(rows []store.AuditEvent, kind string) map[string]int {
	out := map[string]int{}
	for _, r := range rows {
		if r.Kind == kind {
			out[r.Source] += r.Count
		}
	}
	return out
}

const refused = store.AuditPairingAttemptRefused

// A flood of refused attempts from one source is a row per minute, with
// the right count, however many writes it takes.
func TestFloodIsCountedPerMinute(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const n = 100_000
	for i := range n {
		f.w.Count(store.AuditEvent{Kind: refused, Source: "192.0.2.7", Detail: fmt.Sprintf("no open code for selector %02d", i%100)})
		if i == n/2 {
			f.flush(t) // the second half adds to the row the first half wrote
		}
	}
	f.clock.Advance(time.Minute)
	for range 10 {
		f.w.Count(store.AuditEvent{Kind: refused, Source: "192.0.2.7", Detail: "later"})
	}
	f.w.Count(store.AuditEvent{Kind: refused, Source: "198.51.100.1", Detail: "another client"})
	f.flush(t)

	rows := f.rows(t)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3 (two minutes of one source, one of another): %+v", len(rows), rows)
	}
	first := f.clock.Now().Add(-time.Minute).Truncate(time.Minute)
	for _, r := range rows {
		if !r.Aggregated || !r.At.Equal(r.At.Truncate(time.Minute)) {
			t.Errorf("row %+v is not a count of a minute", r)
		}
		if r.Source == "192.0.2.7" && r.At.Equal(first) && (r.Count != n || r.Detail != "no open code for selector 00") {
			t.Errorf("first minute: %+v, want %d events with the first one's detail", r, n)
		}
	}
	if got := total(rows, refused); got["192.0.2.7"] != n+10 || got["198.51.100.1"] != 1 {
		t.Fatalf("counts by source %v", got)
	}
	if f.overflowed(auditlog.OutcomeFolded)+f.overflowed(auditlog.OutcomeDropped) != 0 {
		t.Fatalf("overflow %v with room to spare", f.overflow)
	}
}

// Past its bounds the writer counts per kind (source "*"), then drops;
// it says how many of each, and the counts it keeps add up.
func TestOverflowFoldsThenDrops(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *auditlog.Config) { c.MaxEvents, c.MaxCounts = 3, 2 })
	for i := range 10 {
		f.w.Record(store.AuditEvent{Kind: store.AuditInvocationCompleted, RequestID: fmt.Sprint(i), Detail: "ok"})
	}
	for i := range 50 {
		f.w.Count(store.AuditEvent{Kind: refused, Source: fmt.Sprintf("192.0.2.%d", i)})
	}
	if got := f.overflowed(auditlog.OutcomeFolded); got != 7+48 {
		t.Fatalf("%d events folded, want 55", got)
	}
	f.flush(t)
	rows := f.rows(t)
	if got := total(rows, store.AuditInvocationCompleted); got[""] != 3 || got[auditlog.OverflowSource] != 7 {
		t.Errorf("invocations by source %v, want 3 one by one and 7 counted", got)
	}
	if got := total(rows, refused); got[auditlog.OverflowSource] != 48 || len(got) != 3 {
		t.Errorf("refusals by source %v, want two sources and 48 folded", got)
	}
	for _, r := range rows {
		if r.Source == auditlog.OverflowSource && (!r.Aggregated || r.Detail == "") {
			t.Errorf("overflow row %+v", r)
		}
	}

	// The overflow rows are bounded too: one per kind and minute, up to a
	// limit; beyond it events are dropped and counted as such.
	for i := range 600 {
		f.w.Count(store.AuditEvent{Kind: fmt.Sprintf("test.kind%d", i)})
	}
	if dropped := f.overflowed(auditlog.OutcomeDropped); dropped == 0 || dropped > 600 {
		t.Fatalf("%d of 600 events dropped", dropped)
	}
	f.flush(t)
	if n := len(f.rows(t)); n > len(rows)+2+512 {
		t.Fatalf("%d rows after the overflow", n)
	}
}

// While the store is locked for writing by someone else, the writer goes
// on taking events without waiting; the failed write loses nothing, and
// the next one writes it all.
func TestLockedStoreLosesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	unlock := testsqlite.LockForWriting(t, f.path)
	f.w.Record(store.AuditEvent{Kind: store.AuditInvocationCompleted, RequestID: "A", Detail: "ok"})
	f.w.Count(store.AuditEvent{Kind: refused, Source: "192.0.2.7"})
	if err := f.w.Flush(t.Context()); err == nil {
		t.Fatal("a write to a locked store succeeded")
	}
	for range 1000 {
		f.w.Count(store.AuditEvent{Kind: refused, Source: "192.0.2.7"})
	}
	unlock()
	f.flush(t)
	rows := f.rows(t)
	if got := total(rows, refused)["192.0.2.7"]; got != 1001 {
		t.Fatalf("%d refusals counted, want 1001: %+v", got, rows)
	}
	if got := total(rows, store.AuditInvocationCompleted)[""]; got != 1 {
		t.Fatalf("%d invocation rows, want 1", got)
	}
}

// Run writes events soon after they come, and counts within the interval;
// what is left when it ends is for Flush.
func TestRunWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *auditlog.Config) { c.CountInterval = 10 * time.Millisecond })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	f.w.Record(store.AuditEvent{Kind: store.AuditInvocationCompleted, RequestID: "A", Detail: "ok"})
	for range 5 {
		f.w.Count(store.AuditEvent{Kind: refused, Source: "192.0.2.7"})
	}
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		rows := f.rows(t)
		if total(rows, refused)["192.0.2.7"] == 5 && total(rows, store.AuditInvocationCompleted)[""] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run never wrote the events: %+v", rows)
		}
		<-tick.C
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.w.Record(store.AuditEvent{Kind: store.AuditInvocationCompleted, RequestID: "B", Detail: "ok"})
	f.flush(t)
	if got := total(f.rows(t), store.AuditInvocationCompleted)[""]; got != 2 {
		t.Fatalf("%d invocation rows after Flush, want 2", got)
	}
}

// BenchmarkCount is what a refused attempt costs the path that refuses it.
func BenchmarkCount(b *testing.B) {
	f := &fixture{clock: testclock.New()}
	s, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "gateway.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w, err := auditlog.New(auditlog.Config{Store: s, Now: f.clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	e := store.AuditEvent{Kind: refused, Source: "192.0.2.7", Detail: "no open code"}
	b.ReportAllocs()
	for b.Loop() {
		w.Count(e)
	}
}

// Events wait for others up to EventDelay, but a batch of half the buffer
// is written at once, so a burst never waits out the delay into folding.
func TestHalfFullBatchWrittenAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *auditlog.Config) { c.EventDelay = time.Hour; c.MaxEvents = 64 })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	before := f.store.Commits()
	for i := range 32 {
		f.w.Record(store.AuditEvent{Kind: store.AuditInvocationCompleted, RequestID: fmt.Sprint(i), Detail: "ok"})
	}
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(f.rows(t)) < 32 {
		if time.Now().After(deadline) {
			t.Fatalf("a half-full batch was not written within 20 s (%d rows)", len(f.rows(t)))
		}
		<-tick.C
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := f.store.Commits() - before; n < 1 || n > 2 {
		t.Errorf("32 events took %d commits, want 1 (2 if the write began before the last)", n)
	}
	if got := f.overflowed(auditlog.OutcomeFolded) + f.overflowed(auditlog.OutcomeDropped); got != 0 {
		t.Errorf("%d events folded or dropped", got)
	}
}
