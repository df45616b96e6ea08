package presence_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/presence"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testsqlite"
	"github.com/palyra/palyra-go/internal/teststore"
	"github.com/palyra/palyra-go/internal/testwait"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// written is the real store, telling the test of every TouchNodes it
// answered.
type written struct {
	*store.Store
	calls chan error
}

func (w *written) TouchNodes(ctx context.Context, lastSeen map[identity.DeviceID]time.Time) error {
	err := w.Store.TouchNodes(ctx, lastSeen)
	w.calls <- err
	return err
}

// fixture is a real store on a fresh file with n registered nodes.
func fixture(t *testing.T, n int, busy time.Duration) (*written, string, []identity.DeviceID) {
	t.Helper()
	s, path, ids := teststore.Open(t, n, busy, t0)
	for i, id := range ids {
		if err := s.UpsertNode(context.Background(), store.Node{DeviceID: id, Name: fmt.Sprintf("node %02d", i), LastSeen: t0}); err != nil {
			t.Fatal(err)
		}
	}
	return &written{Store: s, calls: make(chan error, 100)}, path, ids
}

func lastSeen(t *testing.T, s *written) map[identity.DeviceID]time.Time {
	t.Helper()
	nodes, err := s.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[identity.DeviceID]time.Time{}
	for _, n := range nodes {
		out[n.DeviceID] = n.LastSeen
	}
	return out
}

func newTracker(t *testing.T, s presence.Store, interval time.Duration) *presence.Tracker {
	t.Helper()
	tr, err := presence.New(presence.Config{Store: s, Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// Renewals only touch memory; Run writes them all in one transaction per
// interval.
func TestRenewalsWrittenOncePerInterval(t *testing.T) {
	t.Parallel()
	s, _, ids := fixture(t, 3, 0)
	tr := newTracker(t, s, 50*time.Millisecond)
	before := s.Commits()
	for i := range 100 {
		for _, id := range ids {
			tr.Seen(id, t0.Add(time.Duration(i)*time.Second))
		}
	}
	if at, ok := tr.LastSeen(ids[0]); !ok || !at.Equal(t0.Add(99*time.Second)) {
		t.Fatalf("LastSeen before the write = %v, %v; want the last renewal", at, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	if err := testwait.Recv(t, s.calls, 5*time.Second, "the interval's write"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := testwait.Recv(t, done, 5*time.Second, "Run to return"); err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - before; n != 1 {
		t.Errorf("300 renewals of 3 nodes took %d commits, want 1", n)
	}
	for _, id := range ids {
		if got := lastSeen(t, s)[id]; !got.Equal(t0.Add(99 * time.Second)) {
			t.Errorf("node %s: last seen %v in the store, want %v", id.Short(), got, t0.Add(99*time.Second))
		}
		if _, ok := tr.LastSeen(id); ok {
			t.Errorf("node %s: still pending after the write", id.Short())
		}
	}
}

// A node that goes away is written without waiting for the interval.
func TestGoneWrittenAtOnce(t *testing.T) {
	t.Parallel()
	s, _, ids := fixture(t, 2, 0)
	tr := newTracker(t, s, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.Run(ctx)
	tr.Seen(ids[1], t0.Add(time.Minute))
	tr.Gone(ids[0], t0.Add(2*time.Minute))
	if err := testwait.Recv(t, s.calls, 5*time.Second, "the write after Gone"); err != nil {
		t.Fatal(err)
	}
	got := lastSeen(t, s)
	// The other node's renewal waiting then went in the same write.
	if !got[ids[0]].Equal(t0.Add(2*time.Minute)) || !got[ids[1]].Equal(t0.Add(time.Minute)) {
		t.Fatalf("last seen %v after Gone", got)
	}
}

// A write the store refuses (another process holds its write lock past the
// busy timeout) loses nothing: the times stay in memory, LastSeen still
// has them, and the next write stores them.
func TestFailedWriteKept(t *testing.T) {
	t.Parallel()
	s, path, ids := fixture(t, 1, 50*time.Millisecond)
	tr := newTracker(t, s, time.Hour)
	tr.Seen(ids[0], t0.Add(time.Minute))
	release := testsqlite.LockForWriting(t, path)
	err := tr.Flush(context.Background())
	<-s.calls
	if err == nil {
		t.Fatal("Flush succeeded while another connection held the write lock")
	}
	tr.Seen(ids[0], t0.Add(30*time.Second)) // older: the failed write's time wins
	if at, ok := tr.LastSeen(ids[0]); !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after a failed write LastSeen = %v, %v; want %v", at, ok, t0.Add(time.Minute))
	}
	release()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-s.calls
	if got := lastSeen(t, s)[ids[0]]; !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last seen %v in the store, want %v", got, t0.Add(time.Minute))
	}
}

func TestNeedsStore(t *testing.T) {
	if _, err := presence.New(presence.Config{}); err == nil {
		t.Fatalf("New without a store: %v", err)
	}
}
