package gateway_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/pairclient"
)

// interruptedPairing starts pairing an agent in dir, cancels it once the
// request waits for approval, and returns the request.
func interruptedPairing(t *testing.T, rg *runningGateway, dir string) pairclient.Pending {
	t.Helper()
	code, err := rg.g.MintPairingCode(t.Context(), gateway.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := agentIn(t, dir, "laptop")
	ctx, cancel := context.WithCancel(t.Context())
	pending := make(chan pairclient.Pending, 1)
	done := make(chan error, 1)
	go func() {
		_, err := a.Pair(ctx, node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: code.PIN, OnPending: func(p pairclient.Pending) { pending <- p }})
		done <- err
	}()
	var p pairclient.Pending
	select {
	case p = <-pending:
	case err := <-done:
		t.Fatalf("pairing ended before waiting for approval: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no pending request")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted pairing: %v, want context.Canceled", err)
	}
	return p
}

func TestInterruptedPairingCollectedByRunAndRevocationRemembered(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	dir := t.TempDir()
	p := interruptedPairing(t, rg, dir)

	// A restarted node still knows its request.
	a := agentIn(t, dir, "laptop")
	st := a.Status()
	if st.State != node.StatePending || st.PairingRequestID != p.RequestID || st.VerificationCode != p.VerificationCode {
		t.Fatalf("restarted node status %+v, want pending request %s", st, p.RequestID)
	}
	if _, err := rg.g.ApprovePairingRequest(t.Context(), p.RequestID); err != nil {
		t.Fatal(err)
	}
	stop := runAgent(a)
	st = waitState(t, a, node.StateConnected)
	waitOnline(t, rg, st.DeviceID, true)

	if _, err := rg.g.RevokeDevice(t.Context(), st.DeviceID); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, node.StateRevoked)
	if err := stop(); err == nil {
		t.Fatal("Run ended without an error after the revocation")
	}
	again := agentIn(t, dir, "laptop")
	st = again.Status()
	if st.State != node.StateRevoked || st.RevokedAt.IsZero() || !strings.Contains(st.LastError, "revoked by the gateway on ") ||
		!strings.Contains(st.LastError, "pair again") {
		t.Fatalf("restarted revoked node: %+v", st)
	}
	if err := again.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "revoked by the gateway on") {
		t.Fatalf("Run on a revoked node: %v", err)
	}
	if err := again.Forget(); err != nil {
		t.Fatal(err)
	}
	if st := agentIn(t, dir, "laptop").Status(); st.State != node.StateUnpaired || !st.RevokedAt.IsZero() {
		t.Fatalf("after forget: %+v", st)
	}
}

func TestInterruptedPairingRejected(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	dir := t.TempDir()
	p := interruptedPairing(t, rg, dir)
	if _, err := rg.g.RejectPairingRequest(t.Context(), p.RequestID); err != nil {
		t.Fatal(err)
	}
	a := agentIn(t, dir, "laptop")
	_, err := a.Pair(t.Context(), node.PairOptions{})
	if !errors.Is(err, pairing.ErrRejected) || !strings.Contains(err.Error(), "the pairing request was rejected") {
		t.Fatalf("collecting a rejected request: %v", err)
	}
	if a.HasPendingPairing() || a.Status().State != node.StateUnpaired {
		t.Fatalf("after rejection: pending %v, status %+v", a.HasPendingPairing(), a.Status())
	}
}

func TestAnotherDeviceCannotCollect(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	p := interruptedPairing(t, rg, t.TempDir())
	if _, err := rg.g.ApprovePairingRequest(t.Context(), p.RequestID); err != nil {
		t.Fatal(err)
	}
	other, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pairclient.Resume(t.Context(), pairclient.ResumeOptions{Pending: p, Key: other})
	if !errors.Is(err, pairing.ErrRequestUnknown) {
		t.Fatalf("another device collecting: %v, want %v", err, pairing.ErrRequestUnknown)
	}
}
