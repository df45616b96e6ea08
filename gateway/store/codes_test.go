package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testsqlite"
)

func TestCreateCode(t *testing.T) { bothBackends(t, testCreateCode) }

func testCreateCode(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)

	c := testCode(false)
	c.State, c.FailedAttempts = CodeUsed, 7 // ignored
	got := mustCreateCode(t, s, c)
	if got.ID == 0 || got.State != CodeOpen || got.FailedAttempts != 0 {
		t.Fatalf("created %+v", got)
	}
	read, err := s.GetCode(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if read.PINSecret != c.PINSecret || string(read.LinkSecret) != string(c.LinkSecret) ||
		!read.ExpiresAt.Equal(c.ExpiresAt) || !read.CreatedAt.Equal(c.CreatedAt) || read.Name != c.Name {
		t.Fatalf("GetCode %+v, created %+v", read, c)
	}

	// Same selector while the first is open and unexpired.
	dup := testCode(false)
	dup.Selector = c.Selector
	dup.CreatedAt = c.ExpiresAt.Add(-time.Nanosecond)
	_, err = s.CreateCode(ctx, dup)
	wantErr(t, "CreateCode with a selector in use", err, ErrSelectorInUse)

	// Once the first has expired, the selector is free and the old code is
	// marked expired in the same transaction.
	dup.CreatedAt = c.ExpiresAt
	dup.ExpiresAt = dup.CreatedAt.Add(time.Minute)
	second := mustCreateCode(t, s, dup)
	old, err := s.GetCode(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if old.State != CodeExpired || old.PINSecret != "" || old.LinkSecret != nil {
		t.Fatalf("stale code after reuse of its selector: %+v", old)
	}
	if second.ID == got.ID {
		t.Fatal("same ID reused")
	}

	bad := []struct {
		name string
		edit func(*Code)
	}{
		{"no selector", func(c *Code) { c.Selector = "" }},
		{"no PIN secret", func(c *Code) { c.PINSecret = "" }},
		{"no link secret", func(c *Code) { c.LinkSecret = nil }},
		{"expires at creation", func(c *Code) { c.ExpiresAt = c.CreatedAt }},
	}
	for _, b := range bad {
		c := testCode(false)
		b.edit(&c)
		if _, err := s.CreateCode(ctx, c); err == nil {
			t.Errorf("%s: CreateCode succeeded", b.name)
		}
	}
	if _, err := s.GetCode(ctx, 999999); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetCode of a missing code: %v", err)
	}
}

func TestBeginAttemptExpired(t *testing.T) { bothBackends(t, testBeginAttemptExpired) }

func testBeginAttemptExpired(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	c := mustCreateCode(t, s, testCode(false))

	if _, err := s.BeginAttempt(ctx, c.Selector, c.ExpiresAt.Add(-time.Nanosecond)); err != nil {
		t.Fatalf("attempt just before expiry: %v", err)
	}
	_, err := s.BeginAttempt(ctx, c.Selector, c.ExpiresAt)
	wantErr(t, "attempt at expiry", err, ErrCodeNotOpen)
	got, err := s.GetCode(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != CodeExpired || got.PINSecret != "" || got.LinkSecret != nil {
		t.Fatalf("code after an attempt past expiry: %+v", got)
	}
	_, err = s.BeginAttempt(ctx, c.Selector, t0)
	wantErr(t, "attempt on an expired code, with an earlier clock", err, ErrCodeNotOpen)
	_, err = s.BeginAttempt(ctx, "nope", t0)
	wantErr(t, "attempt on an unknown selector", err, ErrCodeNotOpen)
}

func TestBeginAttemptLimit(t *testing.T) { bothBackends(t, testBeginAttemptLimit) }

func testBeginAttemptLimit(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	c := mustCreateCode(t, s, testCode(false))
	for i := 1; i <= MaxFailedAttempts; i++ {
		got, err := s.BeginAttempt(ctx, c.Selector, t0)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if got.PINSecret != c.PINSecret || string(got.LinkSecret) != string(c.LinkSecret) || got.ID != c.ID {
			t.Fatalf("attempt %d returned %+v", i, got)
		}
		if got.FailedAttempts != i {
			t.Fatalf("attempt %d: failed attempts %d", i, got.FailedAttempts)
		}
	}
	_, err := s.BeginAttempt(ctx, c.Selector, t0)
	wantErr(t, "attempt 11", err, ErrCodeNotOpen)
	got, err := s.GetCode(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != CodeClosed || got.FailedAttempts != MaxFailedAttempts || got.PINSecret != "" || got.LinkSecret != nil {
		t.Fatalf("code after %d attempts: %+v", MaxFailedAttempts+1, got)
	}
	// A closed code frees its selector.
	again := testCode(false)
	again.Selector = c.Selector
	mustCreateCode(t, s, again)
}

// The run that used up the last attempt may still succeed: the code closes to
// new runs, not to runs already begun.
func TestCompletePairingOnLastAttempt(t *testing.T) {
	bothBackends(t, testCompletePairingOnLastAttempt)
}

func testCompletePairingOnLastAttempt(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	c := mustCreateCode(t, s, testCode(false))
	for range MaxFailedAttempts {
		if _, err := s.BeginAttempt(ctx, c.Selector, t0); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.CompletePairing(ctx, c.ID, testRequest(t), t0)
	if err != nil {
		t.Fatalf("CompletePairing by the tenth run: %v", err)
	}
	if r.State != RequestPending {
		t.Fatalf("request %+v", r)
	}
	got, _ := s.GetCode(ctx, c.ID)
	if got.State != CodeUsed || got.FailedAttempts != MaxFailedAttempts-1 {
		t.Fatalf("code %+v", got)
	}
	_, err = s.CompletePairing(ctx, c.ID, testRequest(t), t0)
	wantErr(t, "second CompletePairing", err, ErrCodeNotOpen)
}

func TestCompletePairing(t *testing.T) { bothBackends(t, testCompletePairing) }

func testCompletePairing(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	c := mustCreateCode(t, s, testCode(false))
	for range 3 {
		if _, err := s.BeginAttempt(ctx, c.Selector, t0); err != nil {
			t.Fatal(err)
		}
	}
	req := testRequest(t)
	r, err := s.CompletePairing(ctx, c.ID, req, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ID) != 32 || r.State != RequestPending || r.CodeID != c.ID || r.CodeName != c.Name ||
		!r.CreatedAt.Equal(t0.Add(time.Second)) || !r.DecidedAt.IsZero() {
		t.Fatalf("request %+v", r)
	}
	stored, err := s.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(stored.GrantKey) != string(req.GrantKey) || stored.DeviceID != req.DeviceID ||
		string(stored.PublicKey) != string(req.PublicKey) || string(stored.CSR) != string(req.CSR) ||
		stored.VerificationCode != req.VerificationCode || stored.CodeName != c.Name {
		t.Fatalf("stored %+v, sent %+v", stored, req)
	}
	got, _ := s.GetCode(ctx, c.ID)
	if got.State != CodeUsed || got.FailedAttempts != 2 || got.PINSecret != "" || got.LinkSecret != nil {
		t.Fatalf("code after pairing: %+v", got)
	}
	_, err = s.CompletePairing(ctx, c.ID, testRequest(t), t0)
	wantErr(t, "second CompletePairing", err, ErrCodeNotOpen)
	_, err = s.BeginAttempt(ctx, c.Selector, t0)
	wantErr(t, "BeginAttempt on a used code", err, ErrCodeNotOpen)
	_, err = s.CompletePairing(ctx, 424242, testRequest(t), t0)
	wantErr(t, "CompletePairing of an unknown code", err, ErrCodeNotOpen)

	// A run that outlives the code's expiry cannot complete.
	late := mustCreateCode(t, s, testCode(false))
	if _, err := s.BeginAttempt(ctx, late.Selector, t0); err != nil {
		t.Fatal(err)
	}
	lateReq := testRequest(t)
	lateReq.ExpiresAt = late.ExpiresAt.Add(time.Hour)
	_, err = s.CompletePairing(ctx, late.ID, lateReq, late.ExpiresAt)
	wantErr(t, "CompletePairing after expiry", err, ErrCodeNotOpen)
	if got, _ := s.GetCode(ctx, late.ID); got.State != CodeExpired {
		t.Fatalf("late code %+v", got)
	}

	// Malformed requests are refused before touching the code.
	open := mustCreateCode(t, s, testCode(false))
	bad := []struct {
		name string
		edit func(*Request)
	}{
		{"no device", func(r *Request) { r.DeviceID = [20]byte{} }},
		{"key of another device", func(r *Request) { _, r.PublicKey = newDevice(t) }},
		{"short key", func(r *Request) { r.PublicKey = r.PublicKey[:31] }},
		{"no CSR", func(r *Request) { r.CSR = nil }},
		{"already expired", func(r *Request) { r.ExpiresAt = t0 }},
	}
	for _, b := range bad {
		r := testRequest(t)
		b.edit(&r)
		if _, err := s.CompletePairing(ctx, open.ID, r, t0); err == nil || errors.Is(err, ErrCodeNotOpen) {
			t.Errorf("%s: CompletePairing: %v", b.name, err)
		}
	}
	if got, _ := s.GetCode(ctx, open.ID); got.State != CodeOpen {
		t.Fatalf("code after malformed requests: %+v", got)
	}
}

func TestConcurrentBeginAttempt(t *testing.T) { bothBackends(t, testConcurrentBeginAttempt) }

func testConcurrentBeginAttempt(t *testing.T, be backend) {
	t.Parallel()
	ctx := t.Context()
	s, _ := be.openTest(t)
	c := mustCreateCode(t, s, testCode(false))

	const runs = 20
	var wg sync.WaitGroup
	errs := make([]error, runs)
	start := make(chan struct{})
	for i := range runs {
		wg.Go(func() {
			<-start
			_, errs[i] = s.BeginAttempt(ctx, c.Selector, t0)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrCodeNotOpen):
		default:
			t.Errorf("run %d: %v", i, err)
		}
	}
	if ok != MaxFailedAttempts {
		t.Fatalf("%d runs began, want %d", ok, MaxFailedAttempts)
	}
	got, _ := s.GetCode(ctx, c.ID)
	if got.State != CodeClosed || got.FailedAttempts != MaxFailedAttempts {
		t.Fatalf("code %+v", got)
	}
}

func TestSweepAndListCodes(t *testing.T) { bothBackends(t, testSweepAndListCodes) }

func testSweepAndListCodes(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	short := testCode(false)
	short.ExpiresAt = t0.Add(time.Minute)
	a := mustCreateCode(t, s, short)
	b := mustCreateCode(t, s, testCode(false)) // 10 min
	_, r1 := pair(t, s, false, testRequest(t)) // request expires t0+10m
	r2req := testRequest(t)
	r2req.ExpiresAt = t0.Add(time.Minute)
	_, r2 := pair(t, s, false, r2req)

	open, err := s.ListCodes(ctx, false, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 {
		t.Fatalf("open codes %+v", open)
	}
	for _, c := range open {
		if c.PINSecret != "" || c.LinkSecret != nil {
			t.Fatal("ListCodes returned secrets")
		}
	}

	codes, reqs, err := s.Sweep(ctx, t0.Add(time.Minute))
	if err != nil || codes != 1 || reqs != 1 {
		t.Fatalf("Sweep = %d, %d, %v; want 1, 1", codes, reqs, err)
	}
	if got, _ := s.GetCode(ctx, a.ID); got.State != CodeExpired {
		t.Fatalf("code a %+v", got)
	}
	if got, _ := s.GetCode(ctx, b.ID); got.State != CodeOpen {
		t.Fatalf("code b %+v", got)
	}
	if got, _ := s.GetRequest(ctx, r2.ID); got.State != RequestExpired || got.GrantKey != nil || !got.DecidedAt.Equal(r2.ExpiresAt) {
		t.Fatalf("request r2 %+v", got)
	}
	if got, _ := s.GetRequest(ctx, r1.ID); got.State != RequestPending {
		t.Fatalf("request r1 %+v", got)
	}
	codes, reqs, err = s.Sweep(ctx, t0.Add(time.Minute))
	if err != nil || codes != 0 || reqs != 0 {
		t.Fatalf("second Sweep = %d, %d, %v; want 0, 0", codes, reqs, err)
	}
	all, err := s.ListCodes(ctx, true, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("all codes: %d", len(all))
	}
	for _, c := range all {
		if c.State == CodeOpen {
			t.Fatalf("open code after an hour: %+v", c)
		}
	}
}

// Two Stores on one file stand in for two processes: SQLite's locking, not
// the in-process mutex, must keep the count right.
func TestConcurrentBeginAttemptTwoStores(t *testing.T) {
	bothBackends(t, testConcurrentBeginAttemptTwoStores)
}

func testConcurrentBeginAttemptTwoStores(t *testing.T, be backend) {
	t.Parallel()
	ctx := t.Context()
	a, path := be.openTest(t)
	b := be.openAt(t, path)
	defer b.Close()
	c := mustCreateCode(t, a, testCode(false))

	const runs = 20
	var wg sync.WaitGroup
	errs := make([]error, runs)
	start := make(chan struct{})
	for i := range runs {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			_, errs[i] = s.BeginAttempt(ctx, c.Selector, t0)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrCodeNotOpen):
		default:
			t.Errorf("run %d: %v", i, err)
		}
	}
	if ok != MaxFailedAttempts {
		t.Fatalf("%d runs began, want %d", ok, MaxFailedAttempts)
	}
}

// A guess at a selector with no open code costs one write, as an attempt
// on an open code does (the gateway's decoy must take as long): each adds
// one to the count of decoys and writes nothing else, no audit row either.
func TestBeginAttemptCountsDecoys(t *testing.T) { bothBackends(t, testBeginAttemptCountsDecoys) }

func testBeginAttemptCountsDecoys(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	c := mustCreateCode(t, s, testCode(false))
	unknown := "99"
	if c.Selector == unknown {
		unknown = "98"
	}
	commits := s.Commits()
	decoys := func() (n, at int64) {
		t.Helper()
		if err := s.db.QueryRowContext(ctx, `SELECT answered, (SELECT at FROM recent_decoys WHERE slot = answered % 64
			AND selector = ?) FROM pairing_decoys`, unknown).Scan(&n, &at); err != nil {
			t.Fatal(err)
		}
		return n, at
	}
	audited := func() int {
		t.Helper()
		events, err := s.ListAudit(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(events)
	}
	rows := audited()
	const guesses = 25
	for range guesses {
		if _, err := s.BeginAttempt(ctx, unknown, t0); !errors.Is(err, ErrCodeNotOpen) {
			t.Fatalf("guess: %v", err)
		}
	}
	if n, at := decoys(); n != guesses || at != t0.UnixNano() {
		t.Fatalf("decoys counted %d (last at %d), want %d (at %d)", n, at, guesses, t0.UnixNano())
	}
	if got := s.Commits() - commits; got != guesses {
		t.Fatalf("%d guesses made %d commits, want one each", guesses, got)
	}
	if got := audited(); got != rows {
		t.Fatalf("guesses wrote %d audit rows; the audit of guesses is the caller's, aggregated", got-rows)
	}
}

// While another process holds SQLite's write lock, a guess and an attempt
// both wait for it and fail alike, with the store's error, not
// ErrCodeNotOpen.
func TestBeginAttemptWhileLocked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	s, err := Open(ctx, path, Options{Now: fixedClock, BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := mustCreateCode(t, s, testCode(false))
	unknown := "99"
	if c.Selector == unknown {
		unknown = "98"
	}
	testsqlite.LockForWriting(t, path)
	for _, sel := range []string{unknown, c.Selector} {
		if _, err := s.BeginAttempt(ctx, sel, t0); err == nil || errors.Is(err, ErrCodeNotOpen) {
			t.Fatalf("attempt on selector %s while locked: %v, want the lock's error", sel, err)
		}
	}
}
