package pairingsvc_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/auditlog"
	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testwait"
)

// unknownCode returns a PIN and a link for a code with selector that the
// gateway has never heard of.
func (g *gateway) unknownCode(t *testing.T, selector string) (pairing.PIN, *pairing.Link) {
	t.Helper()
	c, err := pairing.NewCode(rand.Reader, selector)
	if err != nil {
		t.Fatal(err)
	}
	return c.PIN(), pairing.NewLink(c, advertised, g.CA.Fingerprint(), g.Clock.Now().Add(time.Hour), gatewayName)
}

// A selector with no open code gets a decoy exchange: the device cannot
// tell it from a wrong secret for an open code (same messages, same
// errors), no code is charged an attempt, and the audit log says what
// happened.
func TestUnknownSelectorAnsweredWithDecoy(t *testing.T) {
	t.Parallel()
	var outcomes []string
	outcomec := make(chan string, 16)
	g := startGateway(t, func(c *pairingsvc.Config) { c.Outcome = func(o string) { outcomec <- o } })
	code, rec := g.Mint(t, "64", true, 10*time.Minute)
	bad := wrongPIN(t, code)
	unknownPIN, unknownLink := g.unknownCode(t, "65")

	// A client that goes on to the end anyway gets the same status.
	open := status.Convert(g.wrongFinish(t, bad))
	outcomes = append(outcomes, testwait.Recv(t, outcomec, 20*time.Second, "the attempt's outcome"))
	for name, cred := range map[string]pairing.Credential{"PIN": unknownPIN, "link": unknownLink} {
		got := status.Convert(g.wrongFinish(t, cred))
		outcomes = append(outcomes, testwait.Recv(t, outcomec, 20*time.Second, "the attempt's outcome"))
		if got.Code() != open.Code() || got.Message() != open.Message() || len(got.Details()) != len(open.Details()) {
			t.Errorf("unknown selector, %s: status %s %q %v; open code, wrong PIN: %s %q %v",
				name, got.Code(), got.Message(), got.Details(), open.Code(), open.Message(), open.Details())
		}
	}
	if !slices.Equal(outcomes, []string{pairingsvc.OutcomeWrongCode, pairingsvc.OutcomeWrongCode, pairingsvc.OutcomeWrongCode}) {
		t.Errorf("outcomes %v, want wrong_code for all three", outcomes)
	}

	// A device that checks the gateway's confirmation stops with the same
	// error either way.
	_, openErr := g.pair(t.Context(), newKey(t), bad, nil)
	_, unknownErr := g.pair(t.Context(), newKey(t), unknownPIN, nil)
	if !errors.Is(unknownErr, pairing.ErrConfirmationFailed) || openErr == nil || unknownErr.Error() != openErr.Error() {
		t.Errorf("device's error: unknown selector %v, wrong PIN %v", unknownErr, openErr)
	}

	// Only the open code's own runs count against it.
	if c := g.code(t, rec.ID); c.FailedAttempts != 2 || c.State != store.CodeOpen {
		t.Errorf("open code after two wrong PINs and decoys: %d attempts, %s; want 2, open", c.FailedAttempts, c.State)
	}
	events, err := g.Store.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []store.AuditEvent{
		{Kind: store.AuditPairingAttemptRefused, Detail: "no open code for selector 65; answered with a decoy exchange"},
		{Kind: store.AuditPairingFailed, Detail: "decoy exchange for selector 65: key confirmation failed"},
	} {
		if !slices.ContainsFunc(events, func(e store.AuditEvent) bool { return e.Kind == want.Kind && e.Detail == want.Detail }) {
			t.Errorf("audit log lacks %s %q", want.Kind, want.Detail)
		}
	}

	// And the right PIN still pairs.
	key := newKey(t)
	res, err := g.pair(t.Context(), key, code.PIN(), nil)
	if err != nil {
		t.Fatalf("right PIN after decoys: %v", err)
	}
	g.checkPaired(t, res, key)
}

// stuckAudit is the store as the audit writer sees it, with its writes
// held until release is closed: a disk too slow for the audit log. It is
// a stand-in at that seam only, because locking the real database would
// hold up BeginAttempt too, as it must (an attempt is counted before it
// runs, decoy or not).
type stuckAudit struct {
	s       *store.Store
	release chan struct{}
}

func (a stuckAudit) AuditBatch(ctx context.Context, events []store.AuditEvent) error {
	select {
	case <-a.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return a.s.AuditBatch(ctx, events)
}

// Audit writes never hold up pairing: with the audit writer's writes
// stuck, wrong PINs and decoys are answered all the same, and their
// counts are in the audit log once the writes go through.
func TestPairingAnswersWhileAuditWriteStuck(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var w *auditlog.Writer
	g := startGateway(t, func(c *pairingsvc.Config) {
		real, ok := c.Store.(*store.Store)
		if !ok {
			t.Fatalf("the test gateway's store is a %T", c.Store)
		}
		var err error
		if w, err = auditlog.New(auditlog.Config{Store: stuckAudit{s: real, release: release}, Now: c.Now,
			CountInterval: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		c.Audit = w
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	code, _ := g.Mint(t, "70", true, 10*time.Minute)
	unknown, _ := g.unknownCode(t, "71")
	const each = 5
	for i := range each {
		for _, cred := range []pairing.Credential{wrongPIN(t, code), unknown} {
			if _, err := g.pair(t.Context(), newKey(t), cred, nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
				t.Fatalf("attempt %d with the audit stuck: %v", i+1, err)
			}
		}
	}
	if events, err := g.Store.ListAudit(t.Context(), 0); err != nil || slices.ContainsFunc(events, func(e store.AuditEvent) bool {
		return e.Kind == store.AuditPairingAttemptRefused
	}) {
		t.Fatalf("audit rows %v (%v) while the audit writes were stuck", events, err)
	}

	// Released, the writer writes what it held: stopped here, so that
	// Flush writes the rest, as the gateway does when it stops.
	close(release)
	cancel()
	testwait.Recv(t, done, 20*time.Second, "the audit writer to stop")
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	events, err := g.Store.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == store.AuditPairingAttemptRefused {
			n += e.Count
		}
	}
	if n != each {
		t.Fatalf("%d decoys counted in the audit log, want %d: %+v", n, each, events)
	}
}
