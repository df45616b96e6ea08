package cluster_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/palyra/palyra-go/gateway/cluster"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/internal/testpg"
	"github.com/palyra/palyra-go/internal/testwait"
)

func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }

// named is url with an application_name, which the dedicated connections
// are named after.
func named(url, name string) string { return url + "&application_name=" + name }

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.OpenPostgres(t.Context(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Revocations applies every revocation once and in order: those notified
// while it listens (idle in between), and after its connection was
// terminated, those made while it could not reconnect, as soon as it can.
func TestRevocationsResyncAfterReconnect(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	url := named(db.URL, "gw")
	s := openStore(t, url)
	base, err := store.Dialer(url, "revocations")
	if err != nil {
		t.Fatal(err)
	}
	// After the first, each dial says so and waits for the gate.
	var dialed atomic.Int32
	redials := make(chan struct{}, 100)
	gate := make(chan struct{})
	dial := func(ctx context.Context) (*pgx.Conn, error) {
		if dialed.Add(1) > 1 {
			redials <- struct{}{}
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return base(ctx)
	}
	applied := make(chan store.Revocation, 100)
	r, err := cluster.NewRevocations(cluster.RevocationsConfig{
		Dial: dial, Store: s, Apply: func(rev store.Revocation) { applied <- rev },
		Backoff: cluster.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
		// Pinged whenever idle for 5 ms: waiting that ends in a timeout
		// must leave the connection listening.
		IdleCheck: 5 * time.Millisecond,
		Logger:    testlog.New(t, "who", "revocations"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := testwait.Recv(t, done, 20*time.Second, "Run to return"); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	ids := make([]identity.DeviceID, 4)
	for i := range ids {
		ids[i] = pairedDevice(t, s)
	}
	revoke := func(i int) {
		t.Helper()
		if _, err := s.RevokeDevice(t.Context(), ids[i], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	want := func(i int) {
		t.Helper()
		got := testwait.Recv(t, applied, 20*time.Second, "the revocation of device "+ids[i].String())
		if got.DeviceID != ids[i] || got.Seq != int64(i+1) {
			t.Fatalf("applied %+v, want revocation %d of %s", got, i+1, ids[i])
		}
	}
	revoke(0)
	want(0)

	db.Terminate(t, "gw revocations")
	testwait.Recv(t, redials, 20*time.Second, "a reconnect")
	if r.Listening() || r.Losses() != 1 {
		t.Fatalf("while reconnecting: listening %t, %d losses", r.Listening(), r.Losses())
	}
	revoke(1)
	revoke(2)
	close(gate)
	want(1)
	want(2)
	revoke(3)
	want(3)
	// Applied counts a revocation once Apply has returned.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(20 * time.Second); r.Applied() != 4 && time.Now().Before(deadline); {
		<-tick.C
	}
	if r.Applied() != 4 || !r.Listening() || r.Losses() != 1 {
		t.Fatalf("at the end: applied %d, listening %t, %d losses", r.Applied(), r.Listening(), r.Losses())
	}
	select {
	case extra := <-applied:
		t.Fatalf("applied %+v a second time", extra)
	default:
	}
}

var selectors atomic.Int32

// pairedDevice adds a paired device to s as the pairing service does: an
// auto-approved code, the device's request, its certificate.
func pairedDevice(t *testing.T, s *store.Store) identity.DeviceID {
	t.Helper()
	ctx, now := t.Context(), time.Now()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.DeviceIDFromPublicKey(pub)
	c, err := s.CreateCode(ctx, store.Code{Selector: fmt.Sprintf("%02d", selectors.Add(1)), PINSecret: "secret", LinkSecret: []byte("secret"),
		AutoApprove: true, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginAttempt(ctx, c.Selector, now); err != nil {
		t.Fatal(err)
	}
	r, err := s.CompletePairing(ctx, c.ID, store.Request{DeviceID: id, PublicKey: pub, Name: "node", Platform: "linux/amd64",
		CSR: []byte("csr"), VerificationCode: "12 34 56", GrantKey: []byte("grant"), ExpiresAt: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IssueCertificate(ctx, r.ID, store.Certificate{Serial: id.String(), DeviceID: id, NotBefore: now,
		NotAfter: now.Add(time.Hour), DER: []byte("der")}, now); err != nil {
		t.Fatal(err)
	}
	return id
}

// One of two leaders runs the job; when its lock's connection is
// terminated it stops the job and the other one takes over.
func TestLeaderHandsOver(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	type running struct {
		name string
		ctx  context.Context
	}
	started := make(chan running, 10)
	leaders := map[string]*cluster.Leader{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	for _, name := range []string{"a", "b"} {
		dial, err := store.Dialer(named(db.URL, name), "sweeper")
		if err != nil {
			t.Fatal(err)
		}
		l, err := cluster.NewLeader(cluster.LeaderConfig{Dial: dial, Retry: 20 * time.Millisecond, Logger: testlog.New(t, "who", name)})
		if err != nil {
			t.Fatal(err)
		}
		leaders[name] = l
		go func() {
			done <- l.Run(ctx, func(ctx context.Context) error {
				started <- running{name, ctx}
				<-ctx.Done()
				return nil
			})
		}()
	}
	defer func() {
		cancel()
		for range 2 {
			if err := testwait.Recv(t, done, 20*time.Second, "Run to return"); err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}()

	first := testwait.Recv(t, started, 20*time.Second, "a leader")
	other := map[string]string{"a": "b", "b": "a"}[first.name]
	if !leaders[first.name].Leading() || leaders[other].Leading() {
		t.Fatalf("%s runs the job; leading: a %t, b %t", first.name, leaders["a"].Leading(), leaders["b"].Leading())
	}
	db.Terminate(t, first.name+" sweeper")
	testwait.Recv(t, first.ctx.Done(), 20*time.Second, "the first leader's job to be stopped")
	second := testwait.Recv(t, started, 20*time.Second, "a second leader")
	if second.name == first.name {
		// It won the lock back before the other tried: still one at a
		// time.
		return
	}
	// Until the first noticed (within Retry) both may have led; from then
	// on, only the second does.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(20 * time.Second); leaders[first.name].Leading(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatalf("%s still leads after losing its lock", first.name)
		}
	}
	if !leaders[second.name].Leading() {
		t.Fatalf("%s runs the job but does not say it leads", second.name)
	}
}

// A job that fails by itself ends Run with its error, and releases the
// lock for the others.
func TestLeaderJobError(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	dial, err := store.Dialer(db.URL, "sweeper")
	if err != nil {
		t.Fatal(err)
	}
	l, err := cluster.NewLeader(cluster.LeaderConfig{Dial: dial, Retry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := l.Run(t.Context(), func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the job's error", err)
	}
	if l.Leading() {
		t.Fatal("still leading after the job failed")
	}
	// The lock goes when the server has ended the closed connection's
	// process: wait for it (bounded) rather than try once.
	wait, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := db.Conn(t).Exec(wait, `SELECT pg_advisory_lock($1)`, int64(cluster.SweeperLockKey)); err != nil {
		t.Fatalf("taking the lock after Run returned: %v", err)
	}
}
