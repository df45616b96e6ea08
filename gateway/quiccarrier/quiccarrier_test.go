package quiccarrier_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/leakcheck"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/wire"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	nodequic "github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

func TestMain(m *testing.M) {
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	leakcheck.Main(m)
}

// waitTimeout bounds every wait in these tests.
const waitTimeout = 5 * time.Second

// fixture is a test gateway with its QUIC server running on loopback.
type fixture struct {
	*testregistry.Gateway
	srv  *quiccarrier.Server
	addr string
}

// newFixture starts a gateway with lease ttl; it stops with the test.
func newFixture(t testing.TB, ttl time.Duration) *fixture {
	t.Helper()
	return newLimitedFixture(t, ttl, quiccarrier.Limits{})
}

// newLimitedFixture starts a gateway with lease ttl and handshake limits;
// it stops with the test.
func newLimitedFixture(t testing.TB, ttl time.Duration, limits quiccarrier.Limits) *fixture {
	t.Helper()
	f := &fixture{Gateway: testregistry.NewGateway(t, nil)}
	cert := testpki.ServerCert(t, f.CA)
	srv, err := quiccarrier.NewServer(quiccarrier.Config{
		TLSCertificate: func() (*tls.Certificate, error) { return cert, nil },
		Common:         f.Common(ttl),
		Limits:         limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.start(t)
	return f
}

func (f *fixture) start(t testing.TB) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = pc.LocalAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.srv.Serve(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Serve did not return within %v", waitTimeout)
		}
		pc.Close()
	})
}

func (f *fixture) sessionConfig(d *testpki.Device) nodecarrier.Config {
	return f.NodeConfig(f.addr, d)
}

// runNode runs nodequic.Run in the background; it returns the welcome
// channel and the result channel, and stops with the test.
func (f *fixture) runNode(t *testing.T, cfg nodecarrier.Config) (context.CancelFunc, <-chan *nodev1.Welcome, <-chan error) {
	up := make(chan *nodev1.Welcome, 1)
	stop, done := testregistry.Serve(t, func(ctx context.Context) error {
		return nodequic.Run(ctx, cfg, func(w *nodev1.Welcome) { up <- w })
	})
	return stop, up, done
}

func TestRegisterRenewGone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 300*time.Millisecond)
	d := testpki.NewDevice(t, f.CA)
	stop, up, done := f.runNode(t, f.sessionConfig(d))

	w := testwait.Recv(t, up, waitTimeout, "welcome")
	if w.GetDeviceId() != d.ID().String() {
		t.Errorf("welcome names device %q, want %s", w.GetDeviceId(), d.ID())
	}
	if w.GetLeaseTtlMs() != 300 || w.GetGatewayName() != "test gateway" {
		t.Errorf("welcome = %v", w)
	}
	if got := time.UnixMilli(w.GetCertificateNotAfterUnixMs()); !got.Equal(d.Cert.Leaf.NotAfter.Truncate(time.Millisecond)) {
		t.Errorf("welcome certificate_not_after = %v, want %v", got, d.Cert.Leaf.NotAfter)
	}
	info := testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered")
	if info.DeviceID != d.ID() || info.Name != "test node" || info.Platform != "linux/amd64" || info.Version != "0.0.1" {
		t.Errorf("NodeRegistered(%+v)", info)
	}
	for i := range 2 {
		if id := testwait.Recv(t, f.Runtime.Renewed, waitTimeout, fmt.Sprintf("renewal %d", i)); id != d.ID() {
			t.Errorf("renewal for %s", id)
		}
	}
	if s := f.Sessions.Sessions(); len(s) != 1 || s[0].DeviceID != d.ID() {
		t.Errorf("Sessions() = %+v", s)
	}

	stop()
	g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone")
	if g.ID != d.ID() || g.Reason != "node disconnected" {
		t.Errorf("NodeGone(%s, %q)", g.ID, g.Reason)
	}
	if err := testwait.Recv(t, done, waitTimeout, "Run to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if s := f.Sessions.Sessions(); len(s) != 0 {
		t.Errorf("Sessions() after gone = %+v", s)
	}
}

// rawClient dials the gateway as d without the session package.
func (f *fixture) rawClient(t testing.TB, d *testpki.Device) (*quic.Conn, *quic.Stream) {
	t.Helper()
	return rawClientAt(t, f.addr, d)
}

// rawClientAt is rawClient for the server at addr.
func rawClientAt(t testing.TB, addr string, d *testpki.Device) (*quic.Conn, *quic.Stream) {
	t.Helper()
	conn, err := quic.DialAddr(t.Context(), addr, &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{quiccarrier.ALPN},
		InsecureSkipVerify: true, // a test client: the server is ours
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return d.Cert, nil
		},
	}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	str, err := conn.OpenStreamSync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = str.SetDeadline(time.Now().Add(waitTimeout))
	return conn, str
}

func register(t testing.TB, str *quic.Stream) *nodev1.Welcome {
	t.Helper()
	if err := wire.WriteFrame(str, &nodev1.Frame{Body: &nodev1.Frame_RegisterNode{RegisterNode: &nodev1.RegisterNode{Name: "raw"}}}); err != nil {
		t.Fatal(err)
	}
	var fr nodev1.Frame
	if err := wire.ReadFrame(str, &fr); err != nil {
		t.Fatal(err)
	}
	if fr.GetWelcome() == nil {
		t.Fatalf("got %v, want Welcome", &fr)
	}
	return fr.GetWelcome()
}

// closeCode waits for conn to close and returns the application error code
// the peer closed it with.
func closeCode(t *testing.T, conn *quic.Conn) quic.ApplicationErrorCode {
	t.Helper()
	select {
	case <-conn.Context().Done():
	case <-time.After(waitTimeout):
		t.Fatal("connection did not close")
	}
	var app *quic.ApplicationError
	if err := context.Cause(conn.Context()); !errors.As(err, &app) || !app.Remote {
		t.Fatalf("connection closed with %v, want a remote application error", err)
	}
	return app.ErrorCode
}

func TestLeaseLapses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 300*time.Millisecond)
	d := testpki.NewDevice(t, f.CA)
	conn, str := f.rawClient(t, d)
	register(t, str)
	testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered")
	// Silent from here on: the lease lapses.
	g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone")
	if g.ID != d.ID() || g.Reason != "lease expired" {
		t.Errorf("NodeGone(%s, %q)", g.ID, g.Reason)
	}
	if code := closeCode(t, conn); code != quiccarrier.CodeLeaseExpired {
		t.Errorf("closed with %#x, want CodeLeaseExpired", code)
	}
}

func TestNoControlStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 300*time.Millisecond)
	d := testpki.NewDevice(t, f.CA)
	conn, err := quic.DialAddr(t.Context(), f.addr, &tls.Config{
		NextProtos:           []string{quiccarrier.ALPN},
		InsecureSkipVerify:   true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return d.Cert, nil },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	if code := closeCode(t, conn); code != quiccarrier.CodeProtocol {
		t.Errorf("closed with %#x, want CodeProtocol", code)
	}
}

func TestDisconnectRevokes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	_, up, done := f.runNode(t, f.sessionConfig(d))
	testwait.Recv(t, up, waitTimeout, "welcome")
	testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered")

	f.Devices.Revoke(d.ID())
	if n := f.Sessions.Disconnect(d.ID(), "revoked by test"); n != 1 {
		t.Errorf("Disconnect closed %d sessions, want 1", n)
	}
	err := testwait.Recv(t, done, waitTimeout, "Run to return")
	if !errors.Is(err, nodecarrier.ErrRevoked) || !errors.Is(err, identity.ErrRevoked) {
		t.Errorf("Run = %v, want ErrRevoked", err)
	}
	g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone")
	if g.ID != d.ID() || g.Reason != "revoked by test" {
		t.Errorf("NodeGone(%s, %q)", g.ID, g.Reason)
	}
	if n := f.Sessions.Disconnect(d.ID(), ""); n != 0 {
		t.Errorf("second Disconnect closed %d", n)
	}

	// Now the handshake itself refuses the device.
	_, up, done = f.runNode(t, f.sessionConfig(d))
	err = testwait.Recv(t, done, waitTimeout, "Run to return")
	if !errors.Is(err, nodecarrier.ErrRevoked) {
		t.Errorf("Run after revocation = %v, want ErrRevoked", err)
	}
	testwait.None(t, up, "welcome")
	testwait.None(t, f.Runtime.Registered, "NodeRegistered")
	t.Logf("revoked at the handshake: %v", err)
}

func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	other := testpki.NewCA(t, "other gateway")
	for name, cert := range map[string]*tls.Certificate{
		"certificate from another CA": testpki.NewDevice(t, other).Cert,
		"no certificate":              {},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := f.sessionConfig(nil)
			cfg.ClientCertificate = func() (*tls.Certificate, error) { return cert, nil }
			err := nodequic.Run(t.Context(), cfg, func(*nodev1.Welcome) { t.Error("came up") })
			if !errors.Is(err, nodecarrier.ErrCertificateRefused) {
				t.Errorf("Run = %v, want ErrCertificateRefused", err)
			}
			if errors.Is(err, nodecarrier.ErrRevoked) {
				t.Errorf("Run = %v, must not be ErrRevoked", err)
			}
			t.Logf("%v", err)
		})
	}
	testwait.None(t, f.Runtime.Registered, "NodeRegistered")
}

// A store that fails while a node's certificate is checked (at the
// handshake, and again at registration) or while it registers is answered
// "gateway busy" with the wait, never as a certificate problem, and the
// node registers once the store answers.
func TestStoreFailureIsBusy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	wantBusy := func(t *testing.T, err error) {
		t.Helper()
		wait, ok := nodecarrier.RetryAfter(err)
		if !ok || wait < carrier.BusyRetryMin || wait > carrier.BusyRetryMax {
			t.Fatalf("Run = %v, want the gateway busy with a wait of 2–10 s", err)
		}
		if errors.Is(err, nodecarrier.ErrCertificateRefused) || nodecarrier.IsVerdict(err) {
			t.Fatalf("Run = %v: a store failure taken as the gateway's verdict", err)
		}
	}
	t.Run("checking the certificate", func(t *testing.T) {
		f.Devices.Fail(errors.New("database is locked"))
		defer f.Devices.Fail(nil)
		wantBusy(t, nodequic.Run(t.Context(), f.sessionConfig(d), func(*nodev1.Welcome) { t.Error("came up") }))
	})
	t.Run("registering", func(t *testing.T) {
		busy := error(carrier.Busy(errors.New("unable to open database file")))
		f.Runtime.Refuse.Store(&busy)
		defer f.Runtime.Refuse.Store(nil)
		wantBusy(t, nodequic.Run(t.Context(), f.sessionConfig(d), func(*nodev1.Welcome) { t.Error("came up") }))
	})
	testwait.None(t, f.Runtime.Registered, "NodeRegistered")
	stop, up, _ := f.runNode(t, f.sessionConfig(d))
	defer stop()
	testwait.Recv(t, up, waitTimeout, "the welcome once the store answers")
	testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered")
}

func TestGatewayFromAnotherCA(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	cfg := f.sessionConfig(testpki.NewDevice(t, f.CA))
	cfg.CACertificate = testpki.NewCA(t, "impostor").Certificate()
	err := nodequic.Run(t.Context(), cfg, nil)
	if !errors.Is(err, identity.ErrUntrusted) {
		t.Errorf("Run = %v, want identity.ErrUntrusted", err)
	}
}

func TestBadFrames(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	oversized := []byte{0x00, 0x10, 0x00, 0x01} // MaxFrameSize+1
	garbage := []byte{0, 0, 0, 3, 0xff, 0xff, 0xff}
	tests := []struct {
		name     string
		register bool
		send     []byte
	}{
		{"oversized first frame", false, oversized},
		{"garbage first frame", false, garbage},
		{"oversized after registering", true, oversized},
		{"garbage after registering", true, garbage},
		{"renewal before registering", false, mustFrame(t, &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{}}})},
		{"welcome from the node", true, mustFrame(t, &nodev1.Frame{Body: &nodev1.Frame_Welcome{Welcome: &nodev1.Welcome{}}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testpki.NewDevice(t, f.CA)
			conn, str := f.rawClient(t, d)
			if tt.register {
				register(t, str)
				testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered")
			}
			if _, err := str.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			if code := closeCode(t, conn); code != quiccarrier.CodeProtocol {
				t.Errorf("closed with %#x, want CodeProtocol", code)
			}
			if tt.register {
				if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.ID != d.ID() {
					t.Errorf("NodeGone(%s)", g.ID)
				}
			}
		})
	}
	// The server still serves.
	d := testpki.NewDevice(t, f.CA)
	_, up, _ := f.runNode(t, f.sessionConfig(d))
	if w := testwait.Recv(t, up, waitTimeout, "welcome"); w.GetDeviceId() != d.ID().String() {
		t.Errorf("welcome for %s", w.GetDeviceId())
	}
}

func mustFrame(t *testing.T, m *nodev1.Frame) []byte {
	b, err := wire.AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecondSessionReplacesFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	_, up1, done1 := f.runNode(t, f.sessionConfig(d))
	testwait.Recv(t, up1, waitTimeout, "first welcome")
	first := testwait.Recv(t, f.Runtime.Registered, waitTimeout, "first NodeRegistered")

	_, up2, done2 := f.runNode(t, f.sessionConfig(d))
	testwait.Recv(t, up2, waitTimeout, "second welcome")
	second := testwait.Recv(t, f.Runtime.Registered, waitTimeout, "second NodeRegistered")
	if err := testwait.Recv(t, done1, waitTimeout, "first Run to return"); !errors.Is(err, nodecarrier.ErrReplaced) {
		t.Errorf("first Run = %v, want ErrReplaced", err)
	}
	if first.RemoteAddr == second.RemoteAddr {
		t.Errorf("both sessions from %s", first.RemoteAddr)
	}
	testwait.None(t, f.Runtime.Gone, "NodeGone for the replaced session")
	if s := f.Sessions.Sessions(); len(s) != 1 || s[0].RemoteAddr != second.RemoteAddr {
		t.Errorf("Sessions() = %+v, want only the second", s)
	}
	select {
	case err := <-done2:
		t.Errorf("second Run returned %v", err)
	default:
	}
}

// TestRegistrationsDoNotWaitForEachOther: while one device's registration
// is held in the runtime (the seam to the store: testregistry.HoldDevice
// blocks NodeRegistered as a write waiting for the store's lock would),
// another device registers and is welcomed; the first is welcomed once
// its write is let go.
func TestRegistrationsDoNotWaitForEachOther(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 5*time.Second)
	slow, quick := testpki.NewDevice(t, f.CA), testpki.NewDevice(t, f.CA)
	held, release := f.Runtime.HoldDevice(slow.ID())
	defer release()
	_, upSlow, _ := f.runNode(t, f.sessionConfig(slow))
	testwait.Recv(t, held, waitTimeout, "the slow device's registration to be held")

	_, upQuick, _ := f.runNode(t, f.sessionConfig(quick))
	testwait.Recv(t, upQuick, waitTimeout, "the other device's welcome while the first one's registration is held")
	if got := testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered"); got.DeviceID != quick.ID() {
		t.Fatalf("NodeRegistered(%s) finished first, want %s", got.DeviceID, quick.ID())
	}
	testwait.None(t, upSlow, "the held device's welcome")

	release()
	testwait.Recv(t, upSlow, waitTimeout, "the held device's welcome once released")
	if n := f.Sessions.Count(); n != 2 {
		t.Errorf("the registry holds %d sessions, want 2", n)
	}
}

func TestRegistryRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	refusal := errors.New("unknown device")
	f.Runtime.Refuse.Store(&refusal)
	err := nodequic.Run(t.Context(), f.sessionConfig(testpki.NewDevice(t, f.CA)), nil)
	if !errors.Is(err, nodecarrier.ErrRegistrationRefused) {
		t.Errorf("Run = %v, want ErrRegistrationRefused", err)
	}
	testwait.None(t, f.Runtime.Gone, "NodeGone")
}

// TestRegistrationRefusedAsRevoked: a device the runtime refuses as
// revoked when it registers (revoked since its handshake) hears that it is
// revoked, not that its registration was refused.
func TestRegistrationRefusedAsRevoked(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	refusal := fmt.Errorf("recording node: %w", identity.ErrRevoked)
	f.Runtime.Refuse.Store(&refusal)
	err := nodequic.Run(t.Context(), f.sessionConfig(testpki.NewDevice(t, f.CA)), nil)
	if !errors.Is(err, nodecarrier.ErrRevoked) || errors.Is(err, nodecarrier.ErrRegistrationRefused) || !strings.Contains(err.Error(), "device revoked") {
		t.Errorf("Run = %v, want ErrRevoked saying the device is revoked", err)
	}
}

func TestRenewCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	c, err := nodequic.Dial(t.Context(), f.sessionConfig(d))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx) }()
	defer func() {
		cancel()
		testwait.Recv(t, served, waitTimeout, "Serve to return")
	}()

	csr, err := d.Key.CreateCSR(rand.Reader, "node")
	if err != nil {
		t.Fatal(err)
	}
	der, err := c.RenewCertificate(t.Context(), csr)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := identity.VerifyDeviceCertificate(f.CA.Certificate(), [][]byte{der}, time.Now()); err != nil || id != d.ID() {
		t.Errorf("renewed certificate: %s, %v", id, err)
	}
	// Another device's CSR is refused; the session stays up.
	csr, err = testpki.NewDevice(t, f.CA).Key.CreateCSR(rand.Reader, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RenewCertificate(t.Context(), csr); err == nil {
		t.Error("renewal for another device's key succeeded")
	}
	if _, err := c.RenewCertificate(t.Context(), []byte("garbage")); err == nil {
		t.Error("renewal with a garbage CSR succeeded")
	}
	select {
	case err := <-served:
		t.Errorf("Serve returned %v after a refused renewal", err)
	default:
	}
}

func TestShutdownClosesSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// A second server of the same config on its own socket, with its own
	// session table (a gateway has one QUIC server), stopped here.
	sessions, err := carrier.NewRegistry(carrier.Config{Runtime: f.Runtime, Authenticate: f.Devices.Authenticate})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := quiccarrier.NewServer(quiccarrier.Config{
		TLSCertificate: func() (*tls.Certificate, error) { return testpki.ServerCert(t, f.CA), nil },
		Common:         carrier.Common{Registry: sessions},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, pc) }()
	cfg := f.sessionConfig(testpki.NewDevice(t, f.CA))
	cfg.Addresses = []string{pc.LocalAddr().String()}
	_, up, done := f.runNode(t, cfg)
	testwait.Recv(t, up, waitTimeout, "welcome")
	// A node that reads nothing after its Welcome: it hears the GoAway
	// only from the close.
	deaf, str := rawClientAt(t, pc.LocalAddr().String(), testpki.NewDevice(t, f.CA))
	register(t, str)
	window := carrier.ReconnectWindow(2)
	cancel()
	if err := testwait.Recv(t, errc, waitTimeout, "Serve to return"); err != nil {
		t.Errorf("Serve = %v", err)
	}
	err = testwait.Recv(t, done, waitTimeout, "Run to return")
	if within, ok := nodecarrier.ReconnectWithin(err); !errors.Is(err, nodecarrier.ErrGatewayShutdown) || !ok || within != window {
		t.Errorf("Run = %v, want a GoAway with the window for two nodes (%v)", err, window)
	}
	code := closeCode(t, deaf)
	if within, ok := wire.ShutdownWindow(uint64(code)); !ok || within != window {
		t.Errorf("the node that read no GoAway was closed with %#x (window %v, %t), want the code for a window of %v", code, within, ok, window)
	}
	for range 2 {
		if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); !strings.Contains(g.Reason, "shutting down") {
			t.Errorf("NodeGone reason %q", g.Reason)
		}
	}
}

// Sanity: certificates in the fixture are what identity expects.
func TestFixture(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "x")
	d := testpki.NewDevice(t, ca)
	if _, err := x509.ParseCertificate(d.Cert.Certificate[0]); err != nil {
		t.Fatal(err)
	}
}
