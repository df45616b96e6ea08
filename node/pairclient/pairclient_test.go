package pairclient_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testpairing"
	"github.com/palyra/palyra-go/node/pairclient"
)

const gatewayName = testpairing.GatewayName

// gateway is a real pairing service on loopback TLS with a real store and
// CA.
type gateway struct{ *testpairing.Gateway }

// startGateway serves the Pairing service. With presentCA, the listener's
// chain carries that CA's certificate instead of its own (the leaf stays
// from its own CA).
func startGateway(t *testing.T, presentCA *identity.CA) *gateway {
	return &gateway{testpairing.Start(t, testpairing.Options{PresentCA: presentCA})}
}

// mint opens a code lasting ten minutes, as the admin API does.
func (g *gateway) mint(t *testing.T, selector string, autoApprove bool) (*pairing.Code, store.Code) {
	return g.Mint(t, selector, autoApprove, 10*time.Minute)
}

// link is the pairing link the admin API would hand out for code, as a
// device reads it.
func (g *gateway) link(t *testing.T, code *pairing.Code, rec store.Code) *pairing.Link {
	t.Helper()
	s, err := pairing.NewLink(code, []string{g.Addr}, g.CA.Fingerprint(), rec.ExpiresAt, gatewayName).Encode()
	if err != nil {
		t.Fatal(err)
	}
	l, err := pairing.ParseLink(s, g.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newKey(t *testing.T) *identity.DeviceKey {
	t.Helper()
	k, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (g *gateway) options(key *identity.DeviceKey, cred pairing.Credential) pairclient.Options {
	return pairclient.Options{
		Address: g.Addr, Credential: cred, Key: key, Name: "laptop", Platform: "linux/amd64",
		Rand: rand.Reader, Now: g.Clock.Now,
	}
}

// checkResult verifies a pairing result against the gateway.
func (g *gateway) checkResult(t *testing.T, res *pairing.Result, key *identity.DeviceKey) {
	t.Helper()
	if res.DeviceID != key.ID() || !res.CACertificate.Equal(g.CA.Certificate()) {
		t.Fatalf("result for %s from CA %s, want %s from %s", res.DeviceID, res.CACertificate.Subject, key.ID(), g.CA.Certificate().Subject)
	}
	if id, err := identity.VerifyDeviceCertificate(g.CA.Certificate(), [][]byte{res.DeviceCertificate.Raw}, g.Clock.Now()); err != nil || id != key.ID() {
		t.Fatalf("device certificate: %s, %v", id, err)
	}
	if !slices.Equal(res.Addresses, []string{g.Addr}) || res.GatewayName != gatewayName {
		t.Fatalf("grant: addresses %v, name %q", res.Addresses, res.GatewayName)
	}
	if dev, err := g.Store.GetDevice(t.Context(), key.ID()); err != nil || !dev.CertificateNotAfter.Equal(res.DeviceCertificate.NotAfter) {
		t.Fatalf("the gateway's record of the device: %+v, %v", dev, err)
	}
}

// closedAddress is a loopback address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

type outcome struct {
	res *pairing.Result
	err error
}

// await receives from ch or fails at a deadline.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func TestPairByPIN(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	code, rec := g.mint(t, "42", true)
	key := newKey(t)
	opts := g.options(key, code.PIN())
	pendings := 0
	opts.OnPending = func(pairclient.Pending) { pendings++ }

	res, err := pairclient.Pair(t.Context(), opts)
	if err != nil {
		t.Fatalf("pairing by PIN: %v", err)
	}
	g.checkResult(t, res, key)
	if pendings != 0 {
		t.Fatalf("OnPending called %d times for an auto-approved code", pendings)
	}
	if c, err := g.Store.GetCode(t.Context(), rec.ID); err != nil || c.State != store.CodeUsed {
		t.Fatalf("code after pairing: %s, %v", c.State, err)
	}
}

func TestPairByLinkWithApproval(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	code, rec := g.mint(t, "17", false)
	key := newKey(t)
	opts := g.options(key, g.link(t, code, rec))
	pending := make(chan pairclient.Pending, 2)
	opts.OnPending = func(p pairclient.Pending) { pending <- p }
	done := make(chan outcome, 1)
	go func() {
		res, err := pairclient.Pair(t.Context(), opts)
		done <- outcome{res, err}
	}()

	var p pairclient.Pending
	select {
	case p = <-pending:
	case o := <-done:
		t.Fatalf("pairing ended before waiting for approval: %v", o.err)
	case <-t.Context().Done():
		t.Fatal("test ended")
	}
	req, err := g.Store.GetRequest(t.Context(), p.RequestID)
	if err != nil {
		t.Fatalf("pending request %q: %v", p.RequestID, err)
	}
	if req.State != store.RequestPending || req.DeviceID != key.ID() || p.VerificationCode != req.VerificationCode ||
		p.VerificationCode == "" || !p.ExpiresAt.Equal(req.ExpiresAt) {
		t.Fatalf("device told %+v, gateway keeps %+v", p, req)
	}
	if _, err := g.Store.ApproveRequest(t.Context(), p.RequestID, g.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	g.Service.Decided(p.RequestID)

	o := await(t, done, "pairing after approval")
	if o.err != nil {
		t.Fatalf("pairing by link after approval: %v", o.err)
	}
	g.checkResult(t, o.res, key)
	if len(pending) != 0 {
		t.Fatal("OnPending called more than once")
	}
}

func TestPairUnreachable(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	code, rec := g.mint(t, "23", true)
	opts := g.options(newKey(t), code.PIN())
	opts.Address = closedAddress(t)
	if _, err := pairclient.Pair(t.Context(), opts); !errors.Is(err, pairclient.ErrUnreachable) {
		t.Fatalf("pairing with nothing listening: %v, want ErrUnreachable", err)
	}
	if c, err := g.Store.GetCode(t.Context(), rec.ID); err != nil || c.FailedAttempts != 0 {
		t.Fatalf("code touched: %+v, %v", c, err)
	}
}

// attempts counts the pairing runs a gateway saw begin.
func (g *gateway) attempts(t *testing.T) int {
	t.Helper()
	events, err := g.Store.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == store.AuditPairingAttempt || e.Kind == store.AuditPairingAttemptRefused {
			n++
		}
	}
	return n
}

func TestPairRefusesGatewayOfAnotherCA(t *testing.T) {
	t.Parallel()
	right := startGateway(t, nil)
	code, rec := right.mint(t, "31", true)
	link := right.link(t, code, rec)

	t.Run("another gateway", func(t *testing.T) {
		impostor := startGateway(t, nil)
		impostor.mint(t, "31", true)
		opts := impostor.options(newKey(t), link)
		_, err := pairclient.Pair(t.Context(), opts)
		if !errors.Is(err, pairing.ErrCAMismatch) {
			t.Fatalf("gateway of another CA: %v, want ErrCAMismatch", err)
		}
		if n := impostor.attempts(t); n != 0 {
			t.Fatalf("the device sent a pairing message to the wrong gateway (%d attempts)", n)
		}
	})

	// The pinned CA in the chain is not enough: it must have issued the
	// leaf.
	t.Run("pinned CA in the chain, leaf from another", func(t *testing.T) {
		impostor := startGateway(t, right.CA)
		impostor.mint(t, "31", true)
		opts := impostor.options(newKey(t), link)
		_, err := pairclient.Pair(t.Context(), opts)
		if !errors.Is(err, pairing.ErrCAMismatch) {
			t.Fatalf("leaf not issued by the pinned CA: %v, want ErrCAMismatch", err)
		}
		if n := impostor.attempts(t); n != 0 {
			t.Fatalf("the device sent a pairing message to the wrong gateway (%d attempts)", n)
		}
	})

	// The right gateway still pairs the link.
	key := newKey(t)
	res, err := pairclient.Pair(t.Context(), right.options(key, link))
	if err != nil {
		t.Fatal(err)
	}
	right.checkResult(t, res, key)
}

func TestPairWrongCode(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	code, rec := g.mint(t, "64", true)

	// The right selector with other secret digits: the device itself finds
	// that the gateway's key confirmation fails (it cannot tell a wrong
	// code from an interceptor), and the gateway counts the attempt.
	var wrong pairing.PIN
	for range 100 {
		c, err := pairing.NewCode(rand.Reader, code.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if c.PINSecret != code.PINSecret {
			wrong = c.PIN()
			break
		}
	}
	_, wrongErr := pairclient.Pair(t.Context(), g.options(newKey(t), wrong))
	if !errors.Is(wrongErr, pairing.ErrConfirmationFailed) {
		t.Fatalf("wrong secret digits: %v, want ErrConfirmationFailed", wrongErr)
	}
	if c, err := g.Store.GetCode(t.Context(), rec.ID); err != nil || c.FailedAttempts != 1 {
		t.Fatalf("code after a wrong PIN: %+v, %v; want 1 failed attempt", c, err)
	}

	// No open code with that selector ends the same way, word for word:
	// the gateway answers with a decoy exchange.
	other, err := pairing.NewCode(rand.Reader, "65")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pairclient.Pair(t.Context(), g.options(newKey(t), other.PIN())); err == nil || err.Error() != wrongErr.Error() {
		t.Fatalf("PIN of no open code: %v, want %v as for a wrong PIN", err, wrongErr)
	}

	// Once used, the code is refused like an unknown one.
	if _, err := pairclient.Pair(t.Context(), g.options(newKey(t), code.PIN())); err != nil {
		t.Fatal(err)
	}
	if _, err := pairclient.Pair(t.Context(), g.options(newKey(t), code.PIN())); err == nil || err.Error() != wrongErr.Error() {
		t.Fatalf("used code: %v, want %v", err, wrongErr)
	}
}

// A gateway that refuses to begin (too many attempts from this address)
// is reported as throttled, with its words and its wait, and not as a
// wrong code.
func TestPairThrottled(t *testing.T) {
	t.Parallel()
	g := &gateway{testpairing.Start(t, testpairing.Options{Configure: func(c *pairingsvc.Config) {
		c.Limits = limit.Config{Burst: 1, Interval: time.Minute}
	}})}
	code, _ := g.mint(t, "33", true)
	other, err := pairing.NewCode(rand.Reader, "34")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pairclient.Pair(t.Context(), g.options(newKey(t), other.PIN())); !errors.Is(err, pairing.ErrConfirmationFailed) {
		t.Fatalf("first attempt: %v", err)
	}
	_, err = pairclient.Pair(t.Context(), g.options(newKey(t), code.PIN()))
	var te *pairclient.ThrottledError
	if !errors.Is(err, pairclient.ErrThrottled) || !errors.As(err, &te) || te.RetryAfter != time.Minute {
		t.Fatalf("second attempt: %v, want ErrThrottled with a minute to wait", err)
	}
	want := "the gateway at " + g.Addr + " refused to start pairing: too many pairing attempts from this address; try again in 60 s"
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	if errors.Is(err, pairing.ErrConfirmationFailed) || errors.Is(err, pairing.ErrWrongCode) || errors.Is(err, pairclient.ErrUnreachable) {
		t.Fatalf("a refusal to begin reads as another failure: %v", err)
	}
	g.Clock.Advance(time.Minute)
	key := newKey(t)
	res, err := pairclient.Pair(t.Context(), g.options(key, code.PIN()))
	if err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	g.checkResult(t, res, key)
}

func TestPairRejected(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	code, _ := g.mint(t, "71", false)
	opts := g.options(newKey(t), code.PIN())
	opts.OnPending = func(p pairclient.Pending) {
		if _, err := g.Store.RejectRequest(t.Context(), p.RequestID, g.Clock.Now()); err != nil {
			t.Error(err)
		}
		g.Service.Decided(p.RequestID)
	}
	if _, err := pairclient.Pair(t.Context(), opts); !errors.Is(err, pairing.ErrRejected) {
		t.Fatalf("rejected request: %v, want ErrRejected", err)
	}
}

func TestPairCanceledWhileWaiting(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	code, _ := g.mint(t, "77", false)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := g.options(newKey(t), code.PIN())
	pending := make(chan pairclient.Pending, 1)
	opts.OnPending = func(p pairclient.Pending) { pending <- p }
	done := make(chan error, 1)
	go func() {
		_, err := pairclient.Pair(ctx, opts)
		done <- err
	}()

	p := await(t, pending, "the request to wait")
	cancel()
	if err := await(t, done, "Pair to return after cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled while waiting: %v, want context.Canceled", err)
	}
	// Nobody decided: the request still waits for an admin.
	if req, err := g.Store.GetRequest(t.Context(), p.RequestID); err != nil || req.State != store.RequestPending {
		t.Fatalf("request after the device gave up: %s, %v", req.State, err)
	}
}

// paired pairs a device and returns its key and CA as a node keeps them.
func (g *gateway) paired(t *testing.T, selector string) (*identity.DeviceKey, *x509.Certificate, *pairing.Result) {
	t.Helper()
	code, _ := g.mint(t, selector, true)
	key := newKey(t)
	res, err := pairclient.Pair(t.Context(), g.options(key, code.PIN()))
	if err != nil {
		t.Fatal(err)
	}
	return key, res.CACertificate, res
}

func (g *gateway) renewOptions(key *identity.DeviceKey, ca *x509.Certificate) pairclient.RenewOptions {
	return pairclient.RenewOptions{Address: g.Addr, Key: key, CA: ca, Name: "laptop", Rand: rand.Reader, Now: g.Clock.Now}
}

func TestRenewExpired(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)

	t.Run("renewed", func(t *testing.T) {
		key, ca, res := g.paired(t, "01")
		g.Clock.Advance(identity.DefaultDeviceCertLifetime + time.Minute)
		der, err := pairclient.RenewExpired(t.Context(), g.renewOptions(key, ca))
		if err != nil {
			t.Fatalf("renewing an expired certificate: %v", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := identity.VerifyDeviceCertificate(g.CA.Certificate(), [][]byte{der}, g.Clock.Now()); err != nil || id != key.ID() {
			t.Fatalf("renewed certificate: %s, %v", id, err)
		}
		if !cert.NotAfter.After(res.DeviceCertificate.NotAfter) {
			t.Fatalf("renewed until %s, the old one ran until %s", cert.NotAfter, res.DeviceCertificate.NotAfter)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		key, ca, _ := g.paired(t, "02")
		if _, err := g.Store.RevokeDevice(t.Context(), key.ID(), g.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := pairclient.RenewExpired(t.Context(), g.renewOptions(key, ca)); !errors.Is(err, pairing.ErrDeviceRevoked) {
			t.Fatalf("renewing a revoked device: %v, want ErrDeviceRevoked", err)
		}
	})

	t.Run("gateway of another CA", func(t *testing.T) {
		key, ca, _ := g.paired(t, "03")
		other := startGateway(t, nil)
		der, err := pairclient.RenewExpired(t.Context(), other.renewOptions(key, ca))
		if err == nil || der != nil {
			t.Fatal("renewed at a gateway whose certificate is not from the device's CA")
		}
		if !strings.Contains(err.Error(), "not from the CA this device paired with") {
			t.Fatalf("refusal does not name the cause: %v", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		key, ca, _ := g.paired(t, "04")
		opts := g.renewOptions(key, ca)
		opts.Address = closedAddress(t)
		if _, err := pairclient.RenewExpired(t.Context(), opts); !errors.Is(err, pairclient.ErrUnreachable) {
			t.Fatalf("renewing with nothing listening: %v, want ErrUnreachable", err)
		}
	})
}
