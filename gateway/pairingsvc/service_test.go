package pairingsvc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testpairing"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// advertised is what the test gateway tells devices in the grant.
var advertised = []string{"127.0.0.1:7443", "[::1]:7443"}

const gatewayName = testpairing.GatewayName

// gateway is the Pairing service as the gateway serves it, with a client
// that trusts its CA (pairclient's own checks are tested in its package).
type gateway struct {
	*testpairing.Gateway
	client pairingv1.PairingClient
}

func startGateway(t *testing.T, configure ...func(*pairingsvc.Config)) *gateway {
	t.Helper()
	g := testpairing.Start(t, testpairing.Options{Addresses: advertised, Configure: func(c *pairingsvc.Config) {
		for _, f := range configure {
			f(c)
		}
	}})
	conn, err := grpc.NewClient("passthrough:///"+g.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    g.CA.Pool(),
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &gateway{Gateway: g, client: pairingv1.NewPairingClient(conn)}
}

func (g *gateway) code(t *testing.T, id int64) store.Code {
	t.Helper()
	c, err := g.Store.GetCode(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongPIN is a well-formed PIN for the same selector with other secret
// digits.
func wrongPIN(t *testing.T, code *pairing.Code) pairing.PIN {
	t.Helper()
	for range 100 {
		other, err := pairing.NewCode(rand.Reader, code.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if other.PINSecret != code.PINSecret {
			return other.PIN()
		}
	}
	t.Fatal("no other PIN drawn in 100 tries")
	return pairing.PIN{}
}

func newKey(t *testing.T) *identity.DeviceKey {
	t.Helper()
	k, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waiting is what a device learns when its request waits for approval.
type waiting struct {
	msg *pairingv1.Pending
	// deviceCode is the verification code the device computed itself.
	deviceCode string
}

// pair runs one exchange the way a device does, with identity/pairing over
// a raw stream, and returns the gateway's status error or the device's own
// error. If the request waits, pending gets what the device was told.
func (g *gateway) pair(ctx context.Context, key *identity.DeviceKey, cred pairing.Credential, pending chan<- waiting) (*pairing.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := g.client.Pair(ctx)
	if err != nil {
		return nil, err
	}
	dev, hello, err := pairing.StartDevice(pairing.DeviceConfig{
		Rand: rand.Reader, Key: key, Name: "laptop", Platform: "linux/amd64", ServerChain: [][]byte{g.Leaf.Raw},
	}, cred)
	if err != nil {
		return nil, err
	}
	resp, err := exchange(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: hello}})
	if err != nil {
		return nil, err
	}
	finish, err := dev.HandleServerHello(resp.GetServerHello())
	if err != nil {
		return nil, err
	}
	resp, err = exchange(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientFinish{ClientFinish: finish}})
	if err != nil {
		return nil, err
	}
	if p := resp.GetPending(); p != nil {
		if pending != nil {
			pending <- waiting{msg: p, deviceCode: dev.VerificationCode()}
		}
		if resp, err = stream.Recv(); err != nil {
			return nil, err
		}
	}
	sf := resp.GetServerFinish()
	if sf == nil {
		return nil, fmt.Errorf("unexpected answer %v", resp)
	}
	return dev.HandleServerFinish(sf, g.Clock.Now())
}

// exchange sends one message and reads the answer; if the gateway already
// ended the stream, it returns the gateway's status.
func exchange(stream pairingv1.Pairing_PairClient, m *pairingv1.PairRequest) (*pairingv1.PairResponse, error) {
	if err := stream.Send(m); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return stream.Recv()
}

// wantStatus fails unless err is a gRPC status with code and, if msg is not
// empty, exactly that message.
func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code || (msg != "" && st.Message() != msg) {
		t.Fatalf("got %v, want status %s %q", err, code, msg)
	}
}

// checkPaired verifies what a device got against the gateway's CA and store.
func (g *gateway) checkPaired(t *testing.T, res *pairing.Result, key *identity.DeviceKey) {
	t.Helper()
	if res.DeviceID != key.ID() {
		t.Fatalf("result for device %s, want %s", res.DeviceID, key.ID())
	}
	id, err := identity.VerifyDeviceCertificate(g.CA.Certificate(), [][]byte{res.DeviceCertificate.Raw}, g.Clock.Now())
	if err != nil || id != key.ID() {
		t.Fatalf("device certificate does not verify for %s: %v, %v", key.ID(), id, err)
	}
	if pub, ok := res.DeviceCertificate.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(key.Public()) {
		t.Fatal("the certificate is not for the device's key")
	}
	if !res.CACertificate.Equal(g.CA.Certificate()) {
		t.Fatal("the grant carries another CA")
	}
	if !slices.Equal(res.Addresses, advertised) || res.GatewayName != gatewayName {
		t.Fatalf("grant addresses %v name %q, want %v %q", res.Addresses, res.GatewayName, advertised, gatewayName)
	}
	dev, err := g.Store.GetDevice(t.Context(), key.ID())
	if err != nil {
		t.Fatalf("the store does not know the paired device: %v", err)
	}
	if !dev.CertificateNotAfter.Equal(res.DeviceCertificate.NotAfter) || !ed25519.PublicKey(dev.PublicKey).Equal(key.Public()) {
		t.Fatalf("stored device %+v does not match the certificate (not after %s)", dev, res.DeviceCertificate.NotAfter)
	}
}

// await receives from ch or fails at the test's deadline.
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

type outcome struct {
	res *pairing.Result
	err error
}

// pairInBackground starts a pairing whose request will wait for a decision.
func (g *gateway) pairInBackground(t *testing.T, key *identity.DeviceKey, cred pairing.Credential) (waiting, <-chan outcome) {
	t.Helper()
	pending := make(chan waiting, 1)
	done := make(chan outcome, 1)
	go func() {
		res, err := g.pair(t.Context(), key, cred, pending)
		done <- outcome{res, err}
	}()
	select {
	case w := <-pending:
		return w, done
	case o := <-done:
		t.Fatalf("pairing ended before waiting for approval: %v", o.err)
	case <-t.Context().Done():
	}
	return waiting{}, done
}

func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	if _, err := pairingsvc.New(pairingsvc.Config{}); err == nil {
		t.Fatal("New accepted a configuration without store, CA and the rest")
	}
}

func TestPairByPINAutoApproved(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *pairingsvc.Config) { c.DeviceCertLifetime = 2 * time.Hour })
	code, rec := g.Mint(t, "42", true, 10*time.Minute)
	key := newKey(t)

	res, err := g.pair(t.Context(), key, code.PIN(), nil)
	if err != nil {
		t.Fatalf("pairing with the right PIN: %v", err)
	}
	g.checkPaired(t, res, key)
	if got := res.DeviceCertificate.NotAfter.Sub(res.DeviceCertificate.NotBefore); got != 2*time.Hour+identity.Backdate {
		t.Fatalf("certificate lifetime %s, want the configured 2h (+%s backdate)", got, identity.Backdate)
	}
	if c := g.code(t, rec.ID); c.State != store.CodeUsed || c.FailedAttempts != 0 {
		t.Fatalf("code after pairing: state %s, %d failed attempts; want used, 0", c.State, c.FailedAttempts)
	}
	reqs, err := g.Store.ListRequests(t.Context(), true, g.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].State != store.RequestIssued || reqs[0].DeviceID != key.ID() ||
		reqs[0].CertificateSerial != fmt.Sprintf("%x", res.DeviceCertificate.SerialNumber) {
		t.Fatalf("requests after auto-approved pairing: %+v", reqs)
	}

	// A code is single use: used, it answers like any code the device
	// does not have the secret of.
	if _, err = g.pair(t.Context(), newKey(t), code.PIN(), nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
		t.Fatalf("pairing with a used code: %v, want ErrConfirmationFailed", err)
	}
	wantStatus(t, g.wrongFinish(t, code.PIN()), codes.PermissionDenied, pairing.ErrWrongCode.Error())
}

func TestPairByLinkAutoApproved(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	code, _ := g.Mint(t, "07", true, 10*time.Minute)
	link := pairing.NewLink(code, advertised, g.CA.Fingerprint(), g.Clock.Now().Add(10*time.Minute), gatewayName)
	key := newKey(t)
	res, err := g.pair(t.Context(), key, link, nil)
	if err != nil {
		t.Fatalf("pairing by link: %v", err)
	}
	g.checkPaired(t, res, key)
}

func TestPairWaitsForApproval(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *pairingsvc.Config) { c.RequestTTL = 5 * time.Minute })
	code, _ := g.Mint(t, "13", false, 10*time.Minute)
	key := newKey(t)

	w, done := g.pairInBackground(t, key, code.PIN())
	if w.msg.VerificationCode != w.deviceCode || w.deviceCode == "" {
		t.Fatalf("gateway shows verification code %q, device computed %q", w.msg.VerificationCode, w.deviceCode)
	}
	if want := g.Clock.Now().Add(5 * time.Minute).UnixMilli(); w.msg.ExpiresAtUnixMs != want {
		t.Fatalf("pending request expires at %d, want now + RequestTTL = %d", w.msg.ExpiresAtUnixMs, want)
	}
	req, err := g.Store.GetRequest(t.Context(), w.msg.RequestId)
	if err != nil {
		t.Fatal(err)
	}
	if req.State != store.RequestPending || req.DeviceID != key.ID() || req.VerificationCode != w.deviceCode {
		t.Fatalf("stored request %+v", req)
	}
	if _, err := g.Store.GetDevice(t.Context(), key.ID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device exists before approval: %v", err)
	}

	if _, err := g.Store.ApproveRequest(t.Context(), w.msg.RequestId, g.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	g.Service.Decided(w.msg.RequestId)
	o := await(t, done, "the certificate after approval")
	if o.err != nil {
		t.Fatalf("pairing after approval: %v", o.err)
	}
	g.checkPaired(t, o.res, key)
	if req, err := g.Store.GetRequest(t.Context(), w.msg.RequestId); err != nil || req.State != store.RequestIssued {
		t.Fatalf("request after delivery: %+v, %v", req, err)
	}
}

func TestPairRejected(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	code, _ := g.Mint(t, "21", false, 10*time.Minute)
	key := newKey(t)

	w, done := g.pairInBackground(t, key, code.PIN())
	if _, err := g.Store.RejectRequest(t.Context(), w.msg.RequestId, g.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	g.Service.Decided(w.msg.RequestId)
	o := await(t, done, "the rejection")
	wantStatus(t, o.err, codes.PermissionDenied, pairing.ErrRejected.Error())
	if _, err := g.Store.GetDevice(t.Context(), key.ID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a rejected device was stored: %v", err)
	}
}

// A request whose TTL passes while the device waits ends with the expiry
// outcome: whether an admin's late decision found it expired (the admin API
// still calls Decided then) or the wait simply wakes after the TTL.
func TestPairRequestExpiresWhileWaiting(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *pairingsvc.Config) { c.RequestTTL = time.Minute })

	t.Run("late decision", func(t *testing.T) {
		code, _ := g.Mint(t, "55", false, 10*time.Minute)
		w, done := g.pairInBackground(t, newKey(t), code.PIN())
		g.Clock.Advance(2 * time.Minute)
		if _, err := g.Store.ApproveRequest(t.Context(), w.msg.RequestId, g.Clock.Now()); !errors.Is(err, store.ErrRequestExpired) {
			t.Fatalf("approving after the request's TTL: %v", err)
		}
		g.Service.Decided(w.msg.RequestId)
		o := await(t, done, "the expiry")
		wantStatus(t, o.err, codes.DeadlineExceeded, pairing.ErrRequestExpired.Error())
	})

	t.Run("no decision", func(t *testing.T) {
		code, _ := g.Mint(t, "56", false, 10*time.Minute)
		w, done := g.pairInBackground(t, newKey(t), code.PIN())
		g.Clock.Advance(2 * time.Minute)
		g.Service.Decided(w.msg.RequestId) // wakes the wait; the store still says pending
		o := await(t, done, "the expiry")
		wantStatus(t, o.err, codes.DeadlineExceeded, pairing.ErrRequestExpired.Error())
	})
}

// wrongFinish answers the gateway's hello with a confirmation that cannot
// be right, as a device that ignores the failed check (or a guesser) would.
func (g *gateway) wrongFinish(t *testing.T, cred pairing.Credential) error {
	t.Helper()
	stream, err := g.client.Pair(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dev, hello, err := pairing.StartDevice(pairing.DeviceConfig{
		Rand: rand.Reader, Key: newKey(t), Name: "guesser", ServerChain: [][]byte{g.Leaf.Raw},
	}, cred)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := exchange(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: hello}})
	if err != nil {
		t.Fatalf("gateway refused a well-formed hello: %v", err)
	}
	if _, err := dev.HandleServerHello(resp.GetServerHello()); !errors.Is(err, pairing.ErrConfirmationFailed) {
		t.Fatalf("device accepted the gateway's confirmation for a wrong PIN: %v", err)
	}
	junk := make([]byte, 32)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	finish, err := proto.Marshal(&pairingv1.ClientFinish{Confirmation: junk, SealedEnrollment: junk})
	if err != nil {
		t.Fatal(err)
	}
	_, err = exchange(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientFinish{ClientFinish: finish}})
	return err
}

func TestWrongPIN(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	code, rec := g.Mint(t, "64", true, 10*time.Minute)
	bad := wrongPIN(t, code)

	// The gateway answers a failed confirmation with the same words as for
	// an unknown code, and nothing about attempts.
	err := g.wrongFinish(t, bad)
	wantStatus(t, err, codes.PermissionDenied, pairing.ErrWrongCode.Error())
	msg := status.Convert(err).Message()
	for _, leak := range []string{"attempt", "remain", "left", "tries", "10", "9"} {
		if strings.Contains(msg, leak) {
			t.Fatalf("refusal %q reveals attempt counts (%q)", msg, leak)
		}
	}
	if c := g.code(t, rec.ID); c.FailedAttempts != 1 || c.State != store.CodeOpen {
		t.Fatalf("after one wrong PIN: %d failed attempts, state %s; want 1, open", c.FailedAttempts, c.State)
	}

	// A device that checks the gateway's confirmation stops by itself; the
	// attempt counts all the same.
	if _, err := g.pair(t.Context(), newKey(t), bad, nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
		t.Fatalf("device with a wrong PIN: %v", err)
	}
	if c := g.code(t, rec.ID); c.FailedAttempts != 2 {
		t.Fatalf("after two wrong PINs: %d failed attempts, want 2", c.FailedAttempts)
	}

	// The right PIN still works, and takes back its own attempt only.
	key := newKey(t)
	res, err := g.pair(t.Context(), key, code.PIN(), nil)
	if err != nil {
		t.Fatalf("right PIN after wrong ones: %v", err)
	}
	g.checkPaired(t, res, key)
	if c := g.code(t, rec.ID); c.FailedAttempts != 2 || c.State != store.CodeUsed {
		t.Fatalf("after pairing: %d failed attempts, state %s; want 2, used", c.FailedAttempts, c.State)
	}
}

func TestCodeClosesAfterMaxFailures(t *testing.T) {
	t.Parallel()
	g := startGateway(t)

	t.Run("closed after 10", func(t *testing.T) {
		code, rec := g.Mint(t, "30", true, 10*time.Minute)
		bad := wrongPIN(t, code)
		for i := range store.MaxFailedAttempts {
			if _, err := g.pair(t.Context(), newKey(t), bad, nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
				t.Fatalf("wrong PIN %d: %v", i+1, err)
			}
		}
		if c := g.code(t, rec.ID); c.State != store.CodeClosed || c.FailedAttempts != store.MaxFailedAttempts {
			t.Fatalf("after %d failures: state %s, %d attempts", store.MaxFailedAttempts, c.State, c.FailedAttempts)
		}
		if _, err := g.pair(t.Context(), newKey(t), code.PIN(), nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
			t.Fatalf("right PIN of a closed code: %v, want ErrConfirmationFailed", err)
		}
	})

	// The run that reaches the limit has had its guess and may succeed.
	t.Run("the 10th run may succeed", func(t *testing.T) {
		code, rec := g.Mint(t, "31", true, 10*time.Minute)
		bad := wrongPIN(t, code)
		for i := range store.MaxFailedAttempts - 1 {
			if _, err := g.pair(t.Context(), newKey(t), bad, nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
				t.Fatalf("wrong PIN %d: %v", i+1, err)
			}
		}
		key := newKey(t)
		res, err := g.pair(t.Context(), key, code.PIN(), nil)
		if err != nil {
			t.Fatalf("right PIN on the last allowed run: %v", err)
		}
		g.checkPaired(t, res, key)
		if c := g.code(t, rec.ID); c.State != store.CodeUsed {
			t.Fatalf("code state %s, want used", c.State)
		}
	})
}

func TestExpiredCodeRefused(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	code, rec := g.Mint(t, "88", true, time.Minute)
	g.Clock.Advance(time.Minute)

	if _, err := g.pair(t.Context(), newKey(t), code.PIN(), nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
		t.Fatalf("PIN of an expired code: %v, want ErrConfirmationFailed", err)
	}
	link := pairing.NewLink(code, advertised, g.CA.Fingerprint(), rec.ExpiresAt, gatewayName)
	if _, err := g.pair(t.Context(), newKey(t), link, nil); !errors.Is(err, pairing.ErrConfirmationFailed) {
		t.Fatalf("link of an expired code: %v, want ErrConfirmationFailed", err)
	}
	if c := g.code(t, rec.ID); c.State != store.CodeExpired || c.PINSecret != "" {
		t.Fatalf("code after its expiry: state %s (secret cleared: %t)", c.State, c.PINSecret == "")
	}
}

func TestRevokedDeviceCannotPairAgain(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	key := newKey(t)
	first, _ := g.Mint(t, "11", true, 10*time.Minute)
	if _, err := g.pair(t.Context(), key, first.PIN(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Store.RevokeDevice(t.Context(), key.ID(), g.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	second, _ := g.Mint(t, "12", true, 10*time.Minute)
	_, err := g.pair(t.Context(), key, second.PIN(), nil)
	wantStatus(t, err, codes.PermissionDenied, pairing.ErrDeviceRevoked.Error())
}

// hello builds a ClientHello message; tests break one field at a time.
func hello(t *testing.T, selector string, edit func(*pairingv1.ClientHello)) []byte {
	t.Helper()
	code, err := pairing.NewCode(rand.Reader, selector)
	if err != nil {
		t.Fatal(err)
	}
	// A real device's hello, decoded so that a test can break it.
	_, raw, err := pairing.StartDevice(pairing.DeviceConfig{
		Rand: rand.Reader, Key: newKey(t), Name: "x", ServerChain: [][]byte{{1}},
	}, code.PIN())
	if err != nil {
		t.Fatal(err)
	}
	var m pairingv1.ClientHello
	if err := proto.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	b, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPairRefusesMalformedStreams(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	code, rec := g.Mint(t, "50", true, 10*time.Minute)

	helloMsg := func(b []byte) *pairingv1.PairRequest {
		return &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: b}}
	}
	finishMsg := func(b []byte) *pairingv1.PairRequest {
		return &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientFinish{ClientFinish: b}}
	}
	oneMessage := func(t *testing.T, m *pairingv1.PairRequest) error {
		stream, err := g.client.Pair(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_, err = exchange(stream, m)
		return err
	}

	first := []struct {
		name string
		msg  *pairingv1.PairRequest
		code codes.Code
	}{
		{"finish first", finishMsg([]byte("too early")), codes.InvalidArgument},
		{"empty message", &pairingv1.PairRequest{}, codes.InvalidArgument},
		{"garbage hello", helloMsg([]byte("\xff\xfe not protobuf")), codes.InvalidArgument},
		{"oversized hello", helloMsg(make([]byte, pairing.MaxMessageSize+1)), codes.InvalidArgument},
		{"wrong version", helloMsg(hello(t, "50", func(m *pairingv1.ClientHello) { m.Version = 2 })), codes.InvalidArgument},
		{"bad selector", helloMsg(hello(t, "50", func(m *pairingv1.ClientHello) { m.Selector = "5x" })), codes.InvalidArgument},
		{"unknown secret kind", helloMsg(hello(t, "50", func(m *pairingv1.ClientHello) { m.SecretKind = 9 })), codes.InvalidArgument},
		{"short share", helloMsg(hello(t, "50", func(m *pairingv1.ClientHello) { m.Share = m.Share[:10] })), codes.InvalidArgument},
		// The identity element is not a valid CPace share; found only
		// after the attempt began.
		{"identity share", helloMsg(hello(t, "50", func(m *pairingv1.ClientHello) { m.Share = make([]byte, len(m.Share)) })), codes.InvalidArgument},
		// A code that is not open is answered by a decoy, which refuses a
		// broken share just the same.
		{"identity share, no such code", helloMsg(hello(t, "51", func(m *pairingv1.ClientHello) { m.Share = make([]byte, len(m.Share)) })), codes.InvalidArgument},
	}
	for _, tc := range first {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, oneMessage(t, tc.msg), tc.code, "")
		})
	}

	// Second message wrong: the run began with a valid hello.
	second := []struct {
		name string
		msg  *pairingv1.PairRequest
		code codes.Code
	}{
		{"garbage finish", finishMsg([]byte("\xff\xfe not protobuf")), codes.InvalidArgument},
		// An empty finish decodes but cannot confirm the key.
		{"hello again", helloMsg(hello(t, "50", func(*pairingv1.ClientHello) {})), codes.PermissionDenied},
	}
	for _, tc := range second {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := g.client.Pair(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := exchange(stream, helloMsg(hello(t, "50", func(*pairingv1.ClientHello) {})))
			if err != nil || resp.GetServerHello() == nil {
				t.Fatalf("valid hello: %v, %v", resp, err)
			}
			_, err = exchange(stream, tc.msg)
			wantStatus(t, err, tc.code, "")
		})
	}

	// The server is still up, and the code still works.
	c := g.code(t, rec.ID)
	if c.State != store.CodeOpen {
		t.Fatalf("code state %s after %d runs, want open", c.State, c.FailedAttempts)
	}
	key := newKey(t)
	res, err := g.pair(t.Context(), key, code.PIN(), nil)
	if err != nil {
		t.Fatalf("pairing after malformed streams: %v", err)
	}
	g.checkPaired(t, res, key)
}

// auditSignal passes audit events on to the store and says, once each is
// written, what the write returned.
type auditSignal struct {
	pairingsvc.Store
	written chan error
}

func (a auditSignal) Audit(ctx context.Context, e store.AuditEvent) error {
	err := a.Store.Audit(ctx, e)
	a.written <- err
	return err
}

// A device that hangs up mid-exchange is still in the audit log, though
// its leaving cancels the stream the gateway was serving it on.
func TestDeviceLeavingIsAudited(t *testing.T) {
	t.Parallel()
	written := make(chan error, 1)
	g := startGateway(t, func(c *pairingsvc.Config) { c.Store = auditSignal{c.Store, written} })
	g.Mint(t, "52", true, 10*time.Minute)

	ctx, cancel := context.WithCancel(t.Context())
	stream, err := g.client.Pair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := exchange(stream, &pairingv1.PairRequest{Message: &pairingv1.PairRequest_ClientHello{ClientHello: hello(t, "52", func(*pairingv1.ClientHello) {})}})
	if err != nil || resp.GetServerHello() == nil {
		t.Fatalf("valid hello: %v, %v", resp, err)
	}
	cancel()

	select {
	case err := <-written:
		if err != nil {
			t.Fatalf("auditing the device that left: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the device's leaving was not audited")
	}
	events, err := g.Store.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(e store.AuditEvent) bool {
		return e.Kind == "pairing.failed" && e.Detail == "device left before confirming"
	}) {
		t.Fatalf("audit log: %+v", events)
	}
}

func TestSilentDeviceTimesOut(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *pairingsvc.Config) { c.StepTimeout = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stream, err := g.client.Pair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv() // the device says nothing
	wantStatus(t, err, codes.DeadlineExceeded, "")
	if ctx.Err() != nil {
		t.Fatal("the test's own deadline ended the stream, not the gateway's step timeout")
	}
}

// renewal is what a device sends to renew: who it claims to be, its
// certificate request, and how it signs the challenge.
type renewal struct {
	deviceID string
	csr      []byte
	sign     func(challenge []byte) []byte
}

// honestRenewal is a renewal by the device's own key, bound to tlsLeaf.
func honestRenewal(t *testing.T, key *identity.DeviceKey, tlsLeaf []byte) renewal {
	t.Helper()
	csr, err := key.CreateCSR(rand.Reader, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	return renewal{deviceID: key.ID().String(), csr: csr, sign: signer(t, key, tlsLeaf, csr)}
}

func signer(t *testing.T, key *identity.DeviceKey, tlsLeaf, csr []byte) func([]byte) []byte {
	return func(challenge []byte) []byte {
		sig, err := key.SignWithContext(pairing.RenewalContext,
			pairing.RenewalMessage(challenge, identity.CertificateFingerprint(tlsLeaf), csr))
		if err != nil {
			t.Error(err)
		}
		return sig
	}
}

// renew runs RenewExpired and returns the certificate (DER) or the
// gateway's status error.
func (g *gateway) renew(ctx context.Context, r renewal) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := g.client.RenewExpired(ctx)
	if err != nil {
		return nil, err
	}
	send := func(m *pairingv1.RenewRequest) (*pairingv1.RenewResponse, error) {
		if err := stream.Send(m); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return stream.Recv()
	}
	resp, err := send(&pairingv1.RenewRequest{Message: &pairingv1.RenewRequest_Start{Start: &pairingv1.RenewStart{DeviceId: r.deviceID, Csr: r.csr}}})
	if err != nil {
		return nil, err
	}
	challenge := resp.GetChallenge()
	if len(challenge) != 32 {
		return nil, fmt.Errorf("challenge of %d bytes, want 32", len(challenge))
	}
	resp, err = send(&pairingv1.RenewRequest{Message: &pairingv1.RenewRequest_Signature{Signature: r.sign(challenge)}})
	if err != nil {
		return nil, err
	}
	return resp.GetCertificate(), nil
}

// paired pairs a new device through an auto-approve code.
func (g *gateway) paired(t *testing.T, selector string) (*identity.DeviceKey, *x509.Certificate) {
	t.Helper()
	code, _ := g.Mint(t, selector, true, 10*time.Minute)
	key := newKey(t)
	res, err := g.pair(t.Context(), key, code.PIN(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return key, res.DeviceCertificate
}

func TestRenewExpired(t *testing.T) {
	t.Parallel()
	g := startGateway(t)

	t.Run("expired certificate of a known device is renewed", func(t *testing.T) {
		key, old := g.paired(t, "01")
		g.Clock.Advance(identity.DefaultDeviceCertLifetime + time.Hour)
		if _, err := identity.VerifyDeviceCertificate(g.CA.Certificate(), [][]byte{old.Raw}, g.Clock.Now()); !errors.Is(err, identity.ErrExpired) {
			t.Fatalf("the old certificate should have run out: %v", err)
		}
		der, err := g.renew(t.Context(), honestRenewal(t, key, g.Leaf.Raw))
		if err != nil {
			t.Fatalf("renewing: %v", err)
		}
		id, err := identity.VerifyDeviceCertificate(g.CA.Certificate(), [][]byte{der}, g.Clock.Now())
		if err != nil || id != key.ID() {
			t.Fatalf("renewed certificate: %s, %v", id, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := g.Store.GetDevice(t.Context(), key.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !cert.NotAfter.After(old.NotAfter) || !dev.CertificateNotAfter.Equal(cert.NotAfter) {
			t.Fatalf("renewed until %s (old %s), store says %s", cert.NotAfter, old.NotAfter, dev.CertificateNotAfter)
		}
	})

	t.Run("revoked device", func(t *testing.T) {
		key, _ := g.paired(t, "03")
		if _, err := g.Store.RevokeDevice(t.Context(), key.ID(), g.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		_, err := g.renew(t.Context(), honestRenewal(t, key, g.Leaf.Raw))
		wantStatus(t, err, codes.PermissionDenied, pairing.ErrDeviceRevoked.Error())
	})

	t.Run("challenge signed by another key", func(t *testing.T) {
		key, old := g.paired(t, "04")
		r := honestRenewal(t, key, g.Leaf.Raw)
		r.sign = signer(t, newKey(t), g.Leaf.Raw, r.csr)
		_, err := g.renew(t.Context(), r)
		wantStatus(t, err, codes.PermissionDenied, "")
		if dev, err := g.Store.GetDevice(t.Context(), key.ID()); err != nil || !dev.CertificateNotAfter.Equal(old.NotAfter) {
			t.Fatalf("a refused renewal changed the device: %+v, %v", dev, err)
		}
		events, err := g.Store.ListAudit(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(events, func(e store.AuditEvent) bool {
			return e.Kind == store.AuditCertificateRefused && e.DeviceID == key.ID()
		}) {
			t.Fatal("the refused renewal was not audited")
		}
	})

	t.Run("signature bound to another TLS certificate", func(t *testing.T) {
		key, _ := g.paired(t, "05")
		r := honestRenewal(t, key, g.Leaf.Raw)
		r.sign = signer(t, key, []byte("a certificate some interceptor presented"), r.csr)
		_, err := g.renew(t.Context(), r)
		wantStatus(t, err, codes.PermissionDenied, "")
	})

	t.Run("certificate request for another key", func(t *testing.T) {
		key, _ := g.paired(t, "06")
		// Signed by the device, but asking for a certificate for a key
		// it does not hold.
		otherCSR := honestRenewal(t, newKey(t), g.Leaf.Raw).csr
		_, err := g.renew(t.Context(), renewal{deviceID: key.ID().String(), csr: otherCSR, sign: signer(t, key, g.Leaf.Raw, otherCSR)})
		wantStatus(t, err, codes.PermissionDenied, "")
	})

	t.Run("unknown device", func(t *testing.T) {
		_, err := g.renew(t.Context(), honestRenewal(t, newKey(t), g.Leaf.Raw))
		wantStatus(t, err, codes.PermissionDenied, "")
	})

	t.Run("malformed start", func(t *testing.T) {
		key, _ := g.paired(t, "08")
		good := honestRenewal(t, key, g.Leaf.Raw)
		for name, r := range map[string]renewal{
			"bad device ID": {deviceID: "not-a-device", csr: good.csr, sign: good.sign},
			"garbage CSR":   {deviceID: good.deviceID, csr: []byte("not a CSR"), sign: good.sign},
		} {
			_, err := g.renew(t.Context(), r)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
		stream, err := g.client.RenewExpired(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pairingv1.RenewRequest{Message: &pairingv1.RenewRequest_Signature{Signature: []byte("sig")}}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		wantStatus(t, err, codes.InvalidArgument, "")
	})

	// Last: it moves the clock past the TLS certificate's life too.
	t.Run("past the grace period", func(t *testing.T) {
		key, _ := g.paired(t, "02")
		g.Clock.Advance(identity.DefaultDeviceCertLifetime + pairingsvc.DefaultRenewalGrace + time.Hour)
		_, err := g.renew(t.Context(), honestRenewal(t, key, g.Leaf.Raw))
		wantStatus(t, err, codes.PermissionDenied, "")
		if !strings.Contains(status.Convert(err).Message(), "pair it again") {
			t.Fatalf("refusal %q does not say to pair again", status.Convert(err).Message())
		}
	})
}
