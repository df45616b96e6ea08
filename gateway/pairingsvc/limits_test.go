package pairingsvc_test

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testwait"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// wantRefusal fails unless err is the limits' refusal: ResourceExhausted
// with msg, and retry as its RetryInfo.
func wantRefusal(t *testing.T, err error, msg string, retry time.Duration) {
	t.Helper()
	wantStatus(t, err, codes.ResourceExhausted, msg)
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			if got := ri.GetRetryDelay().AsDuration(); got != retry {
				t.Fatalf("retry after %s, want %s", got, retry)
			}
			return
		}
	}
	t.Fatalf("refusal %v carries no RetryInfo", err)
}

// firstAnswer opens a stream of kind and returns the first thing the
// gateway answers to its first message: the status, if it refused.
func (g *gateway) firstAnswer(t *testing.T, kind string) error {
	t.Helper()
	var err error
	switch kind {
	case "resume":
		var stream pairingv1.Pairing_ResumeClient
		if stream, err = g.client.Resume(t.Context()); err != nil {
			t.Fatal(err)
		}
		start := &pairingv1.ResumeStart{RequestId: "00112233445566778899aabbccddeeff", DeviceId: newKey(t).ID().String()}
		if err := stream.Send(&pairingv1.ResumeRequest{Message: &pairingv1.ResumeRequest_Start{Start: start}}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		_, err = stream.Recv()
	case "renew":
		_, err = g.renew(t.Context(), honestRenewal(t, newKey(t), g.Leaf.Raw))
	default:
		t.Fatalf("no such call %q", kind)
	}
	return err
}

// The per-address limit refuses before the exchange, for Pair, Resume and
// RenewExpired alike: the refused attempt costs the code nothing, the
// device is told when to come back, and the refusals are counted and
// audited once. Devices that knew the code get their attempt back.
func TestAddressLimit(t *testing.T) {
	t.Parallel()
	var refused []limit.Reason
	refusedc := make(chan limit.Reason, 16)
	outcomes := make(chan string, 16)
	g := startGateway(t, func(c *pairingsvc.Config) {
		c.Limits = limit.Config{Burst: 2, Interval: time.Minute}
		c.Refused = func(r limit.Reason) { refusedc <- r }
		c.Outcome = func(o string) { outcomes <- o }
	})
	code, rec := g.Mint(t, "40", true, 10*time.Minute)
	bad := wrongPIN(t, code)
	for i := range 2 {
		if _, err := g.pair(t.Context(), newKey(t), bad, nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
			t.Fatalf("wrong PIN %d: %v", i+1, err)
		}
	}
	const msg = "too many pairing attempts from this address; try again in 60 s"
	_, err := g.pair(t.Context(), newKey(t), bad, nil)
	wantRefusal(t, err, msg, time.Minute)
	wantRefusal(t, g.firstAnswer(t, "resume"), msg, time.Minute)
	wantRefusal(t, g.firstAnswer(t, "renew"), msg, time.Minute)
	// The right PIN, too: the limit cannot know it is right.
	_, err = g.pair(t.Context(), newKey(t), code.PIN(), nil)
	wantRefusal(t, err, msg, time.Minute)
	for range 4 {
		refused = append(refused, testwait.Recv(t, refusedc, 20*time.Second, "a refusal"))
	}
	if !slices.Equal(refused, []limit.Reason{limit.ReasonAddress, limit.ReasonAddress, limit.ReasonAddress, limit.ReasonAddress}) {
		t.Fatalf("refusals reported %v", refused)
	}
	if c := g.code(t, rec.ID); c.FailedAttempts != 2 {
		t.Fatalf("code has %d failed attempts after 2 wrong PINs and refusals, want 2", c.FailedAttempts)
	}
	// Outcomes are for attempts that ran: the two wrong PINs only (their
	// runs end when the gateway sees the device go; a refusal would have
	// been reported before its status was sent).
	for range 2 {
		testwait.Recv(t, outcomes, 20*time.Second, "a wrong PIN's outcome")
	}
	testwait.None(t, outcomes, "outcome for a refused call")
	events, err := g.Store.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	throttled := slices.DeleteFunc(events, func(e store.AuditEvent) bool { return e.Kind != pairingsvc.AuditPairingThrottled })
	if len(throttled) != 1 || throttled[0].Detail != "too many pairing attempts from 127.0.0.1; refusing more for now" {
		t.Fatalf("throttling audited as %+v, want one event", throttled)
	}

	// The wait told was honest: a minute later the right PIN pairs, and
	// gives its attempt back, so devices that know their codes can pair one
	// after another from the same address.
	g.Clock.Advance(time.Minute)
	for i, sel := range []string{"40", "41", "42", "43"} {
		c := code
		if i > 0 {
			c, _ = g.Mint(t, sel, true, 10*time.Minute)
		}
		key := newKey(t)
		res, err := g.pair(t.Context(), key, c.PIN(), nil)
		if err != nil {
			t.Fatalf("pairing %d after the wait: %v", i+1, err)
		}
		g.checkPaired(t, res, key)
	}
}

// The cap on runs in progress refuses what is beyond it, from any address,
// until a run ends; a request waiting for approval does not hold a place.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	refused := make(chan limit.Reason, 16)
	g := startGateway(t, func(c *pairingsvc.Config) {
		c.Limits = limit.Config{Burst: -1, Concurrency: 1}
		c.Refused = func(r limit.Reason) { refused <- r }
	})
	code, rec := g.Mint(t, "70", false, 10*time.Minute)

	// A run that is past its hello holds the one place.
	stream, err := g.client.Pair(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := exchange(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: hello(t, "70", func(*pairingv1.ClientHello) {})}})
	if err != nil || resp.GetServerHello() == nil {
		t.Fatalf("first run: %v, %v", resp, err)
	}
	if n := g.Service.RunsInProgress(); n != 1 {
		t.Fatalf("%d runs in progress, want 1", n)
	}
	const msg = "the gateway is busy with other pairing attempts; try again in 2 s"
	_, err = g.pair(t.Context(), newKey(t), code.PIN(), nil)
	wantRefusal(t, err, msg, limit.BusyRetry)
	wantRefusal(t, g.firstAnswer(t, "renew"), msg, limit.BusyRetry)
	if r := testwait.Recv(t, refused, 20*time.Second, "the refusal"); r != limit.ReasonBusy {
		t.Fatalf("refusal reported as %s", r)
	}
	// Ending the run (here with a finish that cannot confirm) frees it.
	_, err = exchange(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientFinish{ClientFinish: []byte{}}})
	wantStatus(t, err, codes.PermissionDenied, pairing.ErrWrongCode.Error())
	if n := g.Service.RunsInProgress(); n != 0 {
		t.Fatalf("%d runs in progress after the run ended, want 0", n)
	}

	// Waiting for approval does not hold the place: another run begins.
	w, done := g.pairInBackground(t, newKey(t), code.PIN())
	if n := g.Service.RunsInProgress(); n != 0 {
		t.Fatalf("%d runs in progress while a request waits for approval, want 0", n)
	}
	err = g.wrongFinish(t, wrongPIN(t, code))
	wantStatus(t, err, codes.PermissionDenied, pairing.ErrWrongCode.Error())
	if _, err := g.Store.ApproveRequest(t.Context(), w.msg.RequestId, g.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	g.Service.Decided(w.msg.RequestId)
	if o := await(t, done, "the certificate"); o.err != nil {
		t.Fatalf("pairing after approval: %v", o.err)
	}
	if c := g.code(t, rec.ID); c.State != store.CodeUsed {
		t.Fatalf("code state %s, want used", c.State)
	}
}
