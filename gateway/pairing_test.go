package gateway_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/pairclient"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// clock is a settable time source for the gateway.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// gatewayWithClock starts a gateway whose sense of time the test controls.
func gatewayWithClock(t *testing.T, options ...func(*gateway.Config)) (*runningGateway, *clock) {
	t.Helper()
	clk := &clock{}
	return startGateway(t, t.TempDir(), "127.0.0.1:0", clk.Now, options...), clk
}

// noPairingLimits is for tests that make more failed attempts from
// 127.0.0.1 than the limits allow, about something else.
func noPairingLimits(c *gateway.Config) { c.PairingBurst = -1 }

func mint(t testing.TB, rg *runningGateway, auto bool) *adminv1.MintNodePairingCodeResponse {
	t.Helper()
	c, err := rg.admin.MintNodePairingCode(t.Context(), &adminv1.MintNodePairingCodeRequest{AutoApprove: auto})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongPIN returns a well-formed PIN for the same code number with other
// secret digits.
func wrongPIN(t *testing.T, right string) string {
	t.Helper()
	p, err := pairing.ParsePIN(right)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := pairing.NewCode(rand.Reader, p.Selector())
		if err != nil {
			t.Fatal(err)
		}
		if !c.PIN().Equal(p) {
			return c.PIN().Display()
		}
	}
}

func TestPairingRejections(t *testing.T) {
	t.Parallel()
	rg, clk := gatewayWithClock(t, noPairingLimits)
	addr := rg.g.Addresses()[0]

	t.Run("wrong PIN says only incorrect or expired", func(t *testing.T) {
		code := mint(t, rg, true)
		_, err := newAgent(t, "a").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: wrongPIN(t, code.Pin)})
		if !errors.Is(err, pairing.ErrConfirmationFailed) {
			t.Fatalf("wrong PIN: %v", err)
		}
		for _, leak := range []string{"attempt", "remaining", "left"} {
			if strings.Contains(err.Error(), leak) {
				t.Fatalf("error %q reveals attempt counts", err)
			}
		}
		// The right PIN still works after one failure.
		if _, err := newAgent(t, "b").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: code.Pin}); err != nil {
			t.Fatalf("right PIN after a wrong one: %v", err)
		}
	})

	t.Run("code closes after 10 failures", func(t *testing.T) {
		code := mint(t, rg, true)
		bad := wrongPIN(t, code.Pin)
		for i := range 10 {
			if _, err := newAgent(t, "guesser").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: bad}); err == nil {
				t.Fatalf("guess %d succeeded", i)
			}
		}
		_, err := newAgent(t, "late").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: code.Pin})
		if !errors.Is(err, pairing.ErrConfirmationFailed) {
			t.Fatalf("right PIN after 10 failures: %v", err)
		}
	})

	t.Run("rejected request", func(t *testing.T) {
		code := mint(t, rg, false)
		done := make(chan error, 1)
		pending := make(chan pairclient.Pending, 1)
		go func() {
			_, err := newAgent(t, "unwanted").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: code.Pin, OnPending: func(p pairclient.Pending) { pending <- p }})
			done <- err
		}()
		p := <-pending
		if _, err := rg.admin.RejectPairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: p.RequestID}); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, pairing.ErrRejected) {
			t.Fatalf("rejected request: %v", err)
		}
		// A decided request cannot be decided again.
		if _, err := rg.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: p.RequestID}); err == nil {
			t.Fatal("approved a rejected request")
		}
	})

	t.Run("link pinning another CA", func(t *testing.T) {
		code := mint(t, rg, true)
		l, err := pairing.ParseLink(code.Link, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		other, err := identity.NewCA(rand.Reader, "Other", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		l.CAPin = other.Fingerprint()
		forged, err := l.Encode()
		if err != nil {
			t.Fatal(err)
		}
		_, err = newAgent(t, "pinned").Pair(t.Context(), node.PairOptions{Link: forged})
		if !errors.Is(err, pairing.ErrCAMismatch) {
			t.Fatalf("CA mismatch: %v", err)
		}
	})

	t.Run("gateway unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		code := mint(t, rg, true)
		_, err = newAgent(t, "lost").Pair(t.Context(), node.PairOptions{Gateway: closed, PIN: code.Pin})
		if !errors.Is(err, pairclient.ErrUnreachable) {
			t.Fatalf("unreachable gateway: %v", err)
		}
	})

	t.Run("revoked device cannot pair again", func(t *testing.T) {
		a := newAgent(t, "revokee")
		if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: mint(t, rg, true).Pin}); err != nil {
			t.Fatal(err)
		}
		if _, err := rg.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: a.Status().DeviceID}); err != nil {
			t.Fatal(err)
		}
		if err := a.Forget(); err != nil {
			t.Fatal(err)
		}
		_, err := a.Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: mint(t, rg, true).Pin})
		if !errors.Is(err, pairing.ErrDeviceRevoked) {
			t.Fatalf("re-pairing a revoked device: %v", err)
		}
	})

	// Last: it moves the gateway's clock past the code's expiry.
	t.Run("expired code", func(t *testing.T) {
		code := mint(t, rg, true)
		clk.Advance(11 * time.Minute)
		_, err := newAgent(t, "slow").Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: code.Pin})
		if !errors.Is(err, pairing.ErrConfirmationFailed) {
			t.Fatalf("expired code: %v", err)
		}
	})
}

// A laptop that slept past its certificate's expiry renews by signing the
// gateway's challenge, within the grace period, and connects again.
func TestRenewExpiredCertificate(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	gwDir := t.TempDir()
	rg := startGateway(t, gwDir, "127.0.0.1:0", clk.Now)
	dir := t.TempDir()
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := node.New(node.Config{ConfigDir: dir, Secrets: secrets, Name: "sleeper", Now: clk.Now, Logger: testlog.New(t, "who", "sleeper")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	before := a.Status().CertificateNotAfter

	clk.Advance(25 * time.Hour) // both sides: the certificate has run out
	stop := runAgent(a)
	st := waitState(t, a, node.StateConnected)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !st.CertificateNotAfter.After(before.Add(24 * time.Hour)) {
		t.Fatalf("certificate not renewed: before %s, now %s", before, st.CertificateNotAfter)
	}
	// The renewed certificate was stored: a new agent on the same files
	// sees it.
	again, err := node.New(node.Config{ConfigDir: dir, Secrets: secrets, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Status().CertificateNotAfter.Equal(st.CertificateNotAfter) {
		t.Fatalf("renewed certificate not kept: %s", again.Status().CertificateNotAfter)
	}
	wantRenewalAudited(t, gwDir, st.DeviceID)

	// Past the grace period the device must pair again.
	clk.Advance(32 * 24 * time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	watch := again.Watch(ctx)
	stop = runAgent(again)
	defer stop()
	for st := range watch {
		if strings.Contains(st.LastError, "pair it again") {
			return
		}
	}
	t.Fatalf("no 'pair it again' after the grace period; last status %+v", again.Status())
}

// TestRenewCertificateWhileConnected: a connected node renews its
// certificate over the session when it is due, stays connected, and keeps
// the new certificate.
func TestRenewCertificateWhileConnected(t *testing.T) {
	t.Parallel()
	// Certificates are backdated a minute, so one that lasts ten seconds is
	// past its renewal point as soon as it is issued.
	clk := &clock{}
	gwDir := t.TempDir()
	rg := startGateway(t, gwDir, "127.0.0.1:0", clk.Now, func(c *gateway.Config) { c.DeviceCertLifetime = 10 * time.Second })
	dir := t.TempDir()
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := node.New(node.Config{ConfigDir: dir, Secrets: secrets, Name: "renewer", Logger: testlog.New(t, "who", "renewer")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	paired := a.Status().CertificateNotAfter
	// Certificate times have whole seconds: move the gateway's clock on so
	// the renewed certificate ends visibly later than the first.
	clk.Advance(5 * time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	watch := a.Watch(ctx)
	stop := runAgent(a)
	defer stop()
	var renewed node.Status
	for st := range watch {
		if st.State == node.StateConnected && st.CertificateNotAfter.After(paired) {
			renewed = st
			break
		}
	}
	if renewed.State != node.StateConnected {
		t.Fatalf("certificate not renewed while connected; last status %+v", a.Status())
	}
	if st := a.Status(); st.State != node.StateConnected || !st.ConnectedSince.Equal(renewed.ConnectedSince) {
		t.Fatalf("session did not survive the renewal: %+v", st)
	}
	again, err := node.New(node.Config{ConfigDir: dir, Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Status().CertificateNotAfter; got.Before(renewed.CertificateNotAfter) {
		t.Fatalf("renewed certificate not stored: stored %s, renewed %s", got, renewed.CertificateNotAfter)
	}
	wantRenewalAudited(t, gwDir, renewed.DeviceID)
}

// wantRenewalAudited checks that the gateway in dir audited a renewal of
// the device's certificate.
func wantRenewalAudited(t *testing.T, dir, deviceID string) {
	t.Helper()
	for _, e := range auditRows(t, dir) {
		if e.Kind == store.AuditCertificateRenewed && e.DeviceID.String() == deviceID && strings.Contains(e.Detail, "serial ") {
			return
		}
	}
	t.Fatalf("no %s row for device %s", store.AuditCertificateRenewed, deviceID)
}
