package gateway_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/pairclient"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
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
	// The device has gone when the gateway's handler has seen it leave: an
	// approval before that would still be sent down the stream the device
	// abandoned, and the request count as collected.
	deadline := time.Now().Add(20 * time.Second)
	for rg.g.PairingDevicesWaiting() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway still counts the interrupted device as waiting after 20 s")
		}
		time.Sleep(5 * time.Millisecond)
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
	_, err := pairclient.Resume(t.Context(), pairclient.ResumeOptions{Pending: p, Key: newDeviceKey(t)})
	if !errors.Is(err, pairing.ErrRequestUnknown) {
		t.Fatalf("another device collecting: %v, want %v", err, pairing.ErrRequestUnknown)
	}
}

// storedDeviceKey reads the device key an agent in dir keeps.
func storedDeviceKey(t *testing.T, dir string) *identity.DeviceKey {
	t.Helper()
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := secrets.Get("device-key")
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.ParseDeviceKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// A certificate is delivered once: collecting it again is refused with
// words that say so.
func TestCollectTwice(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	dir := t.TempDir()
	p := interruptedPairing(t, rg, dir)
	if _, err := rg.g.ApprovePairingRequest(t.Context(), p.RequestID); err != nil {
		t.Fatal(err)
	}
	key := storedDeviceKey(t, dir)
	if _, err := pairclient.Resume(t.Context(), pairclient.ResumeOptions{Pending: p, Key: key}); err != nil {
		t.Fatalf("collecting the approved request: %v", err)
	}
	_, err := pairclient.Resume(t.Context(), pairclient.ResumeOptions{Pending: p, Key: key})
	if !errors.Is(err, pairing.ErrRequestCollected) {
		t.Fatalf("collecting it again: %v, want %v", err, pairing.ErrRequestCollected)
	}
}

// A device that claims the request's device ID but signs with another key
// is refused, and the attempt is audited.
func TestResumeWithAnotherKeysSignature(t *testing.T) {
	gwDir := t.TempDir()
	rg := startGateway(t, gwDir, "127.0.0.1:0", nil)
	dir := t.TempDir()
	p := interruptedPairing(t, rg, dir)
	if _, err := rg.g.ApprovePairingRequest(t.Context(), p.RequestID); err != nil {
		t.Fatal(err)
	}
	other := newDeviceKey(t)
	conn, err := grpc.NewClient(rg.g.Addresses()[0], grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		InsecureSkipVerify: true, // the attacker does not care whose gateway it is
		MinVersion:         tls.VersionTLS13,
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := pairingv1.NewPairingClient(conn).Resume(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := &pairingv1.ResumeStart{RequestId: p.RequestID, DeviceId: storedDeviceKey(t, dir).ID().String()}
	if err := stream.Send(&pairingv1.ResumeRequest{Message: &pairingv1.ResumeRequest_Start{Start: start}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || len(resp.GetChallenge()) == 0 {
		t.Fatalf("no challenge: %v %v", resp, err)
	}
	leaf := identity.CertificateFingerprint(p.Resumable.ServerChain[0])
	sig, err := other.SignWithContext(pairing.ResumeContext, pairing.ResumeMessage(resp.GetChallenge(), leaf, p.RequestID))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pairingv1.ResumeRequest{Message: &pairingv1.ResumeRequest_Signature{Signature: sig}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "the signature does not match the key of the device that made this request") {
		t.Fatalf("resuming with another key's signature: %v", err)
	}
	rg.stop()
	st, err := store.Open(t.Context(), filepath.Join(gwDir, gateway.StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	events, err := st.ListAudit(t.Context(), 50)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(e store.AuditEvent) bool {
		return e.RequestID == p.RequestID && strings.Contains(e.Detail, "signature did not verify")
	}) {
		t.Errorf("the refused resume is not in the audit log: %+v", events)
	}
}

// A gateway address that now presents another TLS certificate (another
// machine took it) is not asked for the certificate: the node stops before
// sending anything and says to pair again.
func TestResumeAtAnotherCertificate(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	p := interruptedPairing(t, rg, t.TempDir())
	impostor, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{*testpki.ServerCert(t, testpki.NewCA(t, "Impostor"))},
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	sent := make(chan int, 1)
	go func() {
		c, err := impostor.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c) // the handshake fails, so nothing is read
		sent <- int(n)
	}()
	p.Address = impostor.Addr().String()
	_, err = pairclient.Resume(t.Context(), pairclient.ResumeOptions{Pending: p, Key: newDeviceKey(t)})
	if err == nil || !strings.Contains(err.Error(), "the gateway presents another TLS certificate than when this pairing request was made; pair again") {
		t.Fatalf("resuming at an impostor: %v", err)
	}
	if n := testwait.Recv(t, sent, 20*time.Second, "the impostor's connection to end"); n != 0 {
		t.Errorf("the node sent the impostor %d bytes of application data", n)
	}
}

func newDeviceKey(t *testing.T) *identity.DeviceKey {
	t.Helper()
	key, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
