package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testclock"
	"github.com/palyra/palyra-go/internal/testsqlite"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// auditRows reads the audit log of the gateway whose data is in dir, with
// a store of its own (SQLite lets it beside a running gateway).
func auditRows(t *testing.T, dir string) []store.AuditEvent {
	t.Helper()
	s, err := store.Open(t.Context(), filepath.Join(dir, gateway.StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// counted sums the counts of the rows of kind by source.
func counted(rows []store.AuditEvent, kind string) (map[string]int, int) {
	bySource, n := map[string]int{}, 0
	for _, r := range rows {
		if r.Kind == kind {
			bySource[r.Source] += r.Count
			n++
		}
	}
	return bySource, n
}

// guesser sends pairing hellos for a code that is not open, over one
// connection, as a client guessing codes does, and goes on to a finish
// that cannot confirm when the gateway answers with its decoy exchange.
type guesser struct {
	client pairingv1.PairingClient
	hello  []byte
	finish []byte
}

func newGuesser(t *testing.T, rg *runningGateway) *guesser {
	t.Helper()
	conn := pairingConn(t, rg)
	key, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// No code is open: whatever its selector, the guess is refused.
	code, err := pairing.NewCode(rand.Reader, "42")
	if err != nil {
		t.Fatal(err)
	}
	_, hello, err := pairing.StartDevice(pairing.DeviceConfig{Rand: rand.Reader, Key: key, Name: "guesser", Platform: "test",
		ServerChain: [][]byte{rg.g.CA().Raw}}, code.PIN())
	if err != nil {
		t.Fatal(err)
	}
	return &guesser{client: pairingv1.NewPairingClient(conn), hello: hello, finish: junkFinish(t)}
}

// guess sends one hello and returns the gateway's answer.
func (g *guesser) guess(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	stream, err := g.client.Pair(ctx)
	if err != nil {
		return err
	}
	if _, err := sendRecv(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: g.hello}}); err != nil {
		return err
	}
	_, err = sendRecv(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientFinish{ClientFinish: g.finish}})
	return err
}

// flood sends n guesses, a few at a time, and checks that each is refused
// as a wrong code.
func (g *guesser) flood(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := g.guess(t.Context())
			if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != pairing.ErrWrongCode.Error() {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a guess was answered %v, want the wrong-code refusal", err)
	}
}

// TestPairingFloodIsCounted: a flood of guesses from one client is a row a
// minute in the audit log, with every guess counted, written by the time
// Run returns. The pairing limits are off: this is about the audit log
// (TestPairingFloodFromOneAddress floods with them on).
func TestPairingFloodIsCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := testclock.New()
	rg := startGateway(t, dir, "127.0.0.1:0", clk.Now, noPairingLimits)
	g := newGuesser(t, rg)
	const n = 400
	g.flood(t, n/2)
	clk.Advance(time.Minute)
	g.flood(t, n/2)
	rg.stop()

	bySource, rows := counted(auditRows(t, dir), store.AuditPairingAttemptRefused)
	if bySource["127.0.0.1"] != n || len(bySource) != 1 || rows != 2 {
		t.Fatalf("%d guesses counted in %d rows by source %v, want %d from 127.0.0.1 in a row for each of 2 minutes",
			bySource["127.0.0.1"], rows, bySource, n)
	}
}

// TestPairingStoreErrorAnsweredAlike: while another process holds the
// store's write lock past the store's busy timeout, a guess and an attempt
// on an open code get the same Internal error, since either is counted
// before it runs (a guess in the count of decoys, so that it costs the
// same). That audit writes never hold up pairing is pairingsvc's
// TestPairingAnswersWhileAuditWriteStuck, with only the audit writer's
// writes stuck: a locked database holds up every attempt, as it must.
func TestPairingStoreErrorAnsweredAlike(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil)
	open, err := pairing.ParsePIN(mint(t, rg, true).Pin)
	if err != nil {
		t.Fatal(err)
	}
	pc := dialPairing(t, rg.g.Addresses()[0], "127.0.0.1")
	unlock := testsqlite.LockForWriting(t, filepath.Join(dir, gateway.StoreFile))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for name, cred := range map[string]pairing.Credential{
		"open code":    randomPIN(t, open.Selector()),
		"no such code": randomPIN(t, otherSelector(t, open.Selector(), 1)),
	} {
		a := pc.try(ctx, t, cred)
		if a.refused == nil || a.refused.Code() != codes.Internal || a.refused.Message() != "the gateway could not start pairing" {
			t.Errorf("%s with the store locked: %+v, want Internal %q", name, a, "the gateway could not start pairing")
		}
	}
	unlock()
	if a := pc.try(ctx, t, randomPIN(t, otherSelector(t, open.Selector(), 1))); a.final.Code() != codes.PermissionDenied {
		t.Fatalf("a guess once the store is unlocked: %+v", a)
	}
}

// TestRefusedSessionIsAudited: a node whose certificate the gateway no
// longer accepts is refused at the handshake, and the refusal is counted
// with where it came from.
func TestRefusedSessionIsAudited(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil)
	a := newAgent(t, "revokee")
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	if _, err := rg.g.RevokeDevice(t.Context(), a.Status().DeviceID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := a.Run(ctx); !errors.Is(err, nodecarrier.ErrRevoked) {
		t.Fatalf("running a revoked node: %v", err)
	}
	rg.stop()
	rows := auditRows(t, dir)
	bySource, _ := counted(rows, store.AuditSessionRefused)
	if bySource["127.0.0.1"] < 1 || len(bySource) != 1 {
		t.Fatalf("refused sessions by source %v, want some from 127.0.0.1", bySource)
	}
	for _, r := range rows {
		if r.Kind == store.AuditSessionRefused && !strings.Contains(r.Detail, "revoked") {
			t.Errorf("refusal row %+v does not say why", r)
		}
	}
}

// TestAuditRetention: the sweeper deletes the audit rows older than the
// retention (default 90 days) and keeps the others; a retention too short
// to be meant is refused.
func TestAuditRetention(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		retention time.Duration
		kept      []string
	}{
		{"default", 0, []string{"10 days", "89 days"}},
		{"30 days", 30 * 24 * time.Hour, []string{"10 days"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clk := testclock.New()
			s, err := store.Open(t.Context(), filepath.Join(dir, gateway.StoreFile), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			day := 24 * time.Hour
			old := []store.AuditEvent{
				{At: clk.Now().Add(-400 * day), Kind: store.AuditPairingFailed, Detail: "400 days"},
				{At: clk.Now().Add(-91 * day), Kind: store.AuditPairingAttemptRefused, Detail: "91 days", Source: "192.0.2.1", Count: 9, Aggregated: true},
				{At: clk.Now().Add(-89 * day), Kind: store.AuditPairingFailed, Detail: "89 days"},
				{At: clk.Now().Add(-10 * day), Kind: store.AuditPairingFailed, Detail: "10 days"},
			}
			if err := s.AuditBatch(t.Context(), old); err != nil {
				t.Fatal(err)
			}
			s.Close()

			rg := startGateway(t, dir, "127.0.0.1:0", clk.Now, func(c *gateway.Config) { c.AuditRetention = tc.retention })
			var rows []store.AuditEvent
			deadline := time.Now().Add(20 * time.Second)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				rows = auditRows(t, dir)
				if slices.ContainsFunc(rows, func(r store.AuditEvent) bool { return r.Kind == store.AuditPruned }) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the sweeper never pruned: %+v", rows)
				}
				<-tick.C
			}
			rg.stop()
			var kept []string
			for _, r := range rows {
				if r.Kind == store.AuditPairingFailed || r.Kind == store.AuditPairingAttemptRefused {
					kept = append(kept, r.Detail)
				}
			}
			if !slices.Equal(kept, tc.kept) { // newest first
				t.Fatalf("kept %v, want %v", kept, tc.kept)
			}
		})
	}

	_, err := gateway.New(t.Context(), gateway.Config{DataDir: t.TempDir(), AdminSocket: filepath.Join(t.TempDir(), "a.sock"),
		Listen: "127.0.0.1:0", AuditRetention: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "audit retention of 1m0s is shorter than the least allowed, 1h0m0s") {
		t.Fatalf("a one-minute retention: %v", err)
	}
}

// Sequential direct calls are audited by group commit: N calls made one
// after another leave N rows after a clean stop, written in far fewer than
// N transactions (palyra_store_commits_total). Each call takes a few
// milliseconds on the node, as a real capability's does (system.info reads
// /proc), which is longer than an audit write takes here: written as they
// come, every call's row would cost a commit of its own.
func TestSequentialInvokesAuditBatched(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil, func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" })
	work := echoCapability
	work.Run = func(ctx context.Context, c capability.Call) (json.RawMessage, error) {
		time.Sleep(3 * time.Millisecond) // the call's work, not a wait for anything
		return c.Args, nil
	}
	a := pairedAgent(t, rg, "sequential", []capability.Capability{work}, 0)
	defer runAgent(a)()
	id := waitState(t, a, node.StateConnected).DeviceID
	waitOnline(t, rg, id, true)
	const n = 40
	before := metricValue(t, metricsText(t, rg), "palyra_store_commits_total")
	ids := map[string]bool{}
	for range n {
		resp, err := rg.g.Invoke(t.Context(), gateway.Invocation{DeviceID: id, Capability: echoCapability.Spec.Name, Args: []byte(`{}`)})
		if err != nil || !resp.OK {
			t.Fatalf("invoking: %v %+v", err, resp)
		}
		ids[resp.RequestID] = true
	}
	commits := metricValue(t, metricsText(t, rg), "palyra_store_commits_total") - before
	rg.stop()
	rows := 0
	for _, r := range auditRows(t, dir) {
		if r.Kind == store.AuditInvocationCompleted && ids[r.RequestID] {
			rows++
		}
	}
	t.Logf("%d sequential calls: %v commits while they ran, %d audit rows after the stop", n, commits, rows)
	if rows != n {
		t.Errorf("%d audit rows of the %d calls after a clean stop", rows, n)
	}
	if commits >= n/2 {
		t.Errorf("%d sequential calls took %v commits; the audit log should batch them", n, commits)
	}
}
