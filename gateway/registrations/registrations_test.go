package registrations_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/registrations"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testsqlite"
	"github.com/palyra/palyra-go/internal/teststore"
	"github.com/palyra/palyra-go/internal/testwait"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// gated is the real store, whose first UpsertNodes waits for open to be
// closed, and which tells the test the size of every batch it is given.
type gated struct {
	*store.Store
	open    chan struct{}
	batches chan int
	first   bool
}

func (g *gated) UpsertNodes(ctx context.Context, nodes []store.Node) ([]error, error) {
	g.batches <- len(nodes)
	if !g.first {
		g.first = true // only the writer's one goroutine calls this at a time
		<-g.open
	}
	return g.Store.UpsertNodes(ctx, nodes)
}

// fixture is a real store on a fresh file with n paired devices and the
// path of its file.
func fixture(t *testing.T, n int, busy time.Duration) (*store.Store, string, []identity.DeviceID) {
	t.Helper()
	return teststore.Open(t, n, busy, t0)
}

func newWriter(t *testing.T, s registrations.Store) *registrations.Writer {
	t.Helper()
	w, err := registrations.New(registrations.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// upsert runs w.Upsert in the background; its outcome comes on the
// channel.
func upsert(ctx context.Context, w *registrations.Writer, id identity.DeviceID, name string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.Upsert(ctx, store.Node{DeviceID: id, Name: name, LastSeen: t0.Add(time.Minute)}) }()
	return done
}

// waitWaiting waits until w holds n registrations, bounded in time.
func waitWaiting(t *testing.T, w *registrations.Writer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for w.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the writer holds %d registrations, want %d", w.Waiting(), n)
		}
		<-tick.C
	}
}

// Registrations that queue while a commit runs are written together in the
// next one, and each caller hears its own outcome: the revoked and the
// unknown device are refused alone, the others recorded.
func TestQueuedRegistrationsCommitTogether(t *testing.T) {
	t.Parallel()
	s, _, ids := fixture(t, 4, 0)
	ctx := context.Background()
	if _, err := s.RevokeDevice(ctx, ids[2], t0); err != nil {
		t.Fatal(err)
	}
	g := &gated{Store: s, open: make(chan struct{}), batches: make(chan int, 10)}
	w := newWriter(t, g)

	first := upsert(ctx, w, ids[0], "first")
	if n := testwait.Recv(t, g.batches, 10*time.Second, "the first batch"); n != 1 {
		t.Fatalf("the first registration was written with %d others; want alone, at once", n-1)
	}
	stranger := testpki.NewDevice(t, testpki.NewCA(t, "another gateway")).ID()
	before := s.Commits()
	ok := upsert(ctx, w, ids[1], "ok")
	revoked := upsert(ctx, w, ids[2], "revoked")
	unknown := upsert(ctx, w, stranger, "unknown")
	also := upsert(ctx, w, ids[3], "also")
	waitWaiting(t, w, 5)
	close(g.open)

	if err := testwait.Recv(t, first, 10*time.Second, "the first outcome"); err != nil {
		t.Errorf("first: %v", err)
	}
	if n := testwait.Recv(t, g.batches, 10*time.Second, "the second batch"); n != 4 {
		t.Errorf("the second batch held %d registrations, want the 4 that queued", n)
	}
	for name, c := range map[string]<-chan error{"ok": ok, "also": also} {
		if err := testwait.Recv(t, c, 10*time.Second, name+"'s outcome"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := testwait.Recv(t, revoked, 10*time.Second, "the revoked device's outcome"); !errors.Is(err, store.ErrDeviceRevoked) {
		t.Errorf("revoked device: %v, want ErrDeviceRevoked", err)
	}
	if err := testwait.Recv(t, unknown, 10*time.Second, "the unknown device's outcome"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown device: %v, want ErrNotFound", err)
	}
	if n := s.Commits() - before; n != 2 {
		t.Errorf("%d commits for two batches", n)
	}
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, n := range nodes {
		got[n.Name] = true
	}
	if len(got) != 3 || !got["first"] || !got["ok"] || !got["also"] {
		t.Errorf("nodes recorded: %v; want first, ok and also", got)
	}
	if w.Waiting() != 0 {
		t.Errorf("%d registrations still waiting", w.Waiting())
	}
}

// A store that cannot write fails every registration of the batch with
// its error (not as a verdict on a device), and records none.
func TestStoreFailureFailsTheBatch(t *testing.T) {
	t.Parallel()
	s, path, ids := fixture(t, 3, 100*time.Millisecond)
	release := testsqlite.LockForWriting(t, path)
	g := &gated{Store: s, open: make(chan struct{}), batches: make(chan int, 10)}
	w := newWriter(t, g)
	ctx := context.Background()
	first := upsert(ctx, w, ids[0], "first")
	testwait.Recv(t, g.batches, 10*time.Second, "the first batch")
	rest := []<-chan error{upsert(ctx, w, ids[1], "second"), upsert(ctx, w, ids[2], "third")}
	waitWaiting(t, w, 3)
	close(g.open)
	if err := testwait.Recv(t, first, 10*time.Second, "the first outcome"); err == nil {
		t.Error("a registration was recorded while the store was locked")
	}
	if n := testwait.Recv(t, g.batches, 10*time.Second, "the second batch"); n != 2 {
		t.Errorf("the second batch held %d registrations, want 2", n)
	}
	for i, c := range rest {
		err := testwait.Recv(t, c, 10*time.Second, "an outcome")
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeviceRevoked) {
			t.Errorf("registration %d with the store locked: %v; want the store's failure", i+2, err)
		}
	}
	release()
	if nodes, err := s.ListNodes(ctx); err != nil || len(nodes) != 0 {
		t.Errorf("nodes after the failed batches: %+v, %v; want none", nodes, err)
	}
}

// A caller whose context ends stops waiting at once, and a registration
// not yet taken into a batch is then not written.
func TestCallerThatGivesUpIsSkipped(t *testing.T) {
	t.Parallel()
	s, _, ids := fixture(t, 3, 0)
	g := &gated{Store: s, open: make(chan struct{}), batches: make(chan int, 10)}
	w := newWriter(t, g)
	ctx := context.Background()
	first := upsert(ctx, w, ids[0], "first")
	testwait.Recv(t, g.batches, 10*time.Second, "the first batch")
	impatient, giveUp := context.WithCancel(ctx)
	gaveUp := upsert(impatient, w, ids[1], "impatient")
	stays := upsert(ctx, w, ids[2], "patient")
	waitWaiting(t, w, 3)
	giveUp()
	if err := testwait.Recv(t, gaveUp, 10*time.Second, "the impatient caller's return"); !errors.Is(err, context.Canceled) {
		t.Errorf("impatient caller: %v, want context.Canceled", err)
	}
	close(g.open)
	for _, c := range []<-chan error{first, stays} {
		if err := testwait.Recv(t, c, 10*time.Second, "an outcome"); err != nil {
			t.Error(err)
		}
	}
	if n := testwait.Recv(t, g.batches, 10*time.Second, "the second batch"); n != 1 {
		t.Errorf("the second batch held %d registrations, want only the patient one", n)
	}
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == "impatient" {
			t.Error("the registration of a caller that gave up was written")
		}
	}
	if len(nodes) != 2 {
		t.Errorf("%d nodes recorded, want 2", len(nodes))
	}
}
