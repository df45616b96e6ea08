package grpccarrier_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/gateway/grpccarrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/testwait"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	nodegrpc "github.com/palyra/palyra-go/node/grpccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

func TestNewServerChecksConfig(t *testing.T) {
	t.Parallel()
	// A Registry without Authenticate is refused by carrier.NewRegistry
	// (TestNewRegistryChecksConfig).
	tests := []struct {
		name string
		cfg  grpccarrier.Config
	}{
		{"no Registry", grpccarrier.Config{}},
		{"negative lease", grpccarrier.Config{Common: carrier.Common{Registry: testregistry.NewGateway(t, nil).Sessions, LeaseTTL: -time.Second}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := grpccarrier.NewServer(tt.cfg); err == nil {
				t.Error("NewServer accepted it")
			}
		})
	}
}

// A node registers, is welcomed, becomes ready, keeps its lease and goes
// away; the Registry hears each step.
func TestRegisterReadyRenewGone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 300*time.Millisecond)
	d := testpki.NewDevice(t, f.CA)
	before := time.Now()
	n := f.runNode(t, f.sessionConfig(d))
	after := time.Now()

	w := n.conn.Welcome()
	if w.GetDeviceId() != d.ID().String() || w.GetGatewayName() != "test gateway" || w.GetLeaseTtlMs() != 300 {
		t.Errorf("Welcome = %v", w)
	}
	if st := time.UnixMilli(w.GetServerTimeUnixMs()); st.Before(before.Truncate(time.Millisecond)) || st.After(after) {
		t.Errorf("Welcome server time %v, want between %v and %v", st, before, after)
	}
	if got := time.UnixMilli(w.GetCertificateNotAfterUnixMs()); !got.Equal(d.Cert.Leaf.NotAfter.Truncate(time.Millisecond)) {
		t.Errorf("Welcome certificate_not_after = %v, want %v", got, d.Cert.Leaf.NotAfter)
	}

	info := testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered")
	if info.DeviceID != d.ID() || info.Name != "test node" || info.Platform != "linux/amd64" || info.Version != "0.0.1" ||
		info.Transport != "grpc" || len(info.Capabilities) != 1 || info.Capabilities[0].GetName() != "test.echo" ||
		!strings.HasPrefix(info.RemoteAddr, "127.0.0.1:") {
		t.Errorf("NodeRegistered(%+v)", info)
	}
	if !info.CertNotAfter.Equal(d.Cert.Leaf.NotAfter) {
		t.Errorf("CertNotAfter %v, want %v", info.CertNotAfter, d.Cert.Leaf.NotAfter)
	}
	// Dial returns once the gateway has attached the session.
	select {
	case ready := <-f.Runtime.Ready:
		if ready.DeviceID != d.ID() || ready.Transport != "grpc" {
			t.Errorf("NodeReady(%+v)", ready)
		}
	default:
		t.Error("Dial returned before NodeReady")
	}
	if s := f.Sessions.Sessions(); len(s) != 1 || s[0].DeviceID != d.ID() || s[0].Transport != "grpc" {
		t.Errorf("Sessions() = %+v", s)
	}
	// Renewals every ttl/3 keep it beyond a lease.
	for i := range 4 {
		if id := testwait.Recv(t, f.Runtime.Renewed, waitTimeout, fmt.Sprintf("renewal %d", i)); id != d.ID() {
			t.Errorf("renewal for %s", id)
		}
	}
	select {
	case err := <-n.done:
		t.Fatalf("Serve returned %v while renewing", err)
	default:
	}

	n.cancel()
	if err := testwait.Recv(t, n.done, waitTimeout, "Serve to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
	g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone")
	if g.ID != d.ID() || g.Reason != "node disconnected" {
		t.Errorf("NodeGone(%s, %q)", g.ID, g.Reason)
	}
	testwait.None(t, f.Runtime.Gone, "second NodeGone")
	if s := f.Sessions.Sessions(); len(s) != 0 {
		t.Errorf("Sessions() after gone = %+v", s)
	}
}

func TestCloseConn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	n := f.runNode(t, f.sessionConfig(d))
	if err := n.conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := testwait.Recv(t, n.done, waitTimeout, "Serve to return"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve = %v, want net.ErrClosed", err)
	}
	if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.Reason != "node disconnected" {
		t.Errorf("NodeGone reason %q", g.Reason)
	}
	if err := n.conn.SendEvent(&nodev1.NodeEvent{}); err == nil {
		t.Error("SendEvent after Close succeeded")
	}
}

func TestCloseWithoutServe(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	c, err := nodegrpc.Dial(t.Context(), f.sessionConfig(testpki.NewDevice(t, f.CA)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.Reason != "node disconnected" {
		t.Errorf("NodeGone reason %q", g.Reason)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Serve(t.Context()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve after Close = %v, want net.ErrClosed", err)
	}
}

func TestCapabilitiesAndEventsReachRegistry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	n := f.runNode(t, f.sessionConfig(d))

	caps := []*nodev1.Capability{
		{Name: "test.echo", Enabled: false},
		{Name: "system.info", Enabled: true, Privacy: nodev1.Capability_PRIVACY_LOW},
	}
	if err := n.conn.SendCapabilities(caps); err != nil {
		t.Fatal(err)
	}
	got := testwait.Recv(t, f.Runtime.Caps, waitTimeout, "CapabilitiesChanged")
	if len(got) != 2 || !proto.Equal(got[0], caps[0]) || !proto.Equal(got[1], caps[1]) {
		t.Errorf("CapabilitiesChanged(%v)", got)
	}
	if s := f.Sessions.Sessions(); len(s) != 1 || len(s[0].Capabilities) != 2 || s[0].Capabilities[1].GetName() != "system.info" {
		t.Errorf("Sessions() after CapabilitiesChanged = %+v", s)
	}

	ev := &nodev1.NodeEvent{TimeUnixMs: 42, Kind: nodev1.NodeEvent_KIND_CONSENT, Capability: "system.info", RequestId: "r1", Message: "allowed"}
	if err := n.conn.SendEvent(ev); err != nil {
		t.Fatal(err)
	}
	if got := testwait.Recv(t, f.Runtime.Events, waitTimeout, "NodeEvent"); !proto.Equal(got, ev) {
		t.Errorf("NodeEvent(%v), want %v", got, ev)
	}
}

func TestNoClientCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	other := testpki.NewCA(t, "other gateway")
	tests := []struct {
		name    string
		cert    *tls.Certificate
		message string
	}{
		{"no certificate", nil, "a device certificate is required"},
		{"certificate from another CA", testpki.NewDevice(t, other).Cert, "device certificate refused"},
		{"gateway's own server certificate", testpki.ServerCert(t, f.CA), "device certificate refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := f.rawClient(t, tt.cert)
			check := func(rpc string, err error) {
				t.Helper()
				if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), tt.message) {
					t.Errorf("%s: %v, want Unauthenticated %q", rpc, err, tt.message)
				}
			}
			_, err := client.RegisterNode(t.Context(), &nodev1.RegisterNode{Name: "intruder"})
			check("RegisterNode", err)
			_, err = client.SubmitCapabilityResult(t.Context(), &nodev1.Result{RequestId: "r"})
			check("SubmitCapabilityResult", err)
			str := openStream(t, client)
			_, err = str.Recv()
			check("StreamEvents", err)

			// The session package says the certificate was refused, which
			// is final.
			cfg := f.sessionConfig(nil)
			cfg.ClientCertificate = func() (*tls.Certificate, error) {
				if tt.cert == nil {
					return &tls.Certificate{}, nil
				}
				return tt.cert, nil
			}
			_, err = nodegrpc.Dial(t.Context(), cfg)
			if !errors.Is(err, nodecarrier.ErrCertificateRefused) || errors.Is(err, nodecarrier.ErrRevoked) {
				t.Errorf("Dial = %v, want ErrCertificateRefused", err)
			}
		})
	}
}

func TestRevoked(t *testing.T) {
	t.Parallel()
	t.Run("refused at every RPC", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, time.Second)
		d := testpki.NewDevice(t, f.CA)
		f.Devices.Revoke(d.ID())
		client := f.rawClient(t, d.Cert)
		_, err := client.RegisterNode(t.Context(), &nodev1.RegisterNode{})
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "device revoked" {
			t.Errorf("RegisterNode = %v, want PermissionDenied \"device revoked\"", err)
		}
		_, err = client.SubmitCapabilityResult(t.Context(), &nodev1.Result{RequestId: "r"})
		wantCode(t, err, codes.PermissionDenied)
		_, err = nodegrpc.Dial(t.Context(), f.sessionConfig(d))
		if !errors.Is(err, nodecarrier.ErrRevoked) || !errors.Is(err, identity.ErrRevoked) {
			t.Errorf("Dial = %v, want ErrRevoked", err)
		}
	})

	t.Run("Disconnect ends a live session", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, time.Second)
		d := testpki.NewDevice(t, f.CA)
		cfg := f.sessionConfig(d)
		started := make(chan struct{})
		cfg.Invoke = func(ctx context.Context, _ *nodev1.Invoke, _ func(string)) *nodev1.Result {
			close(started)
			<-ctx.Done()
			return &nodev1.Result{ErrorCode: "canceled"}
		}
		n := f.runNode(t, cfg)
		calls := make(chan error, 1)
		go func() {
			_, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "live"}, nil)
			calls <- err
		}()
		testwait.Recv(t, started, waitTimeout, "the call to start")

		f.Devices.Revoke(d.ID())
		if got := f.Sessions.Disconnect(d.ID(), "revoked by test"); got != 1 {
			t.Errorf("Disconnect ended %d sessions, want 1", got)
		}
		err := testwait.Recv(t, n.done, waitTimeout, "Serve to return")
		if !errors.Is(err, nodecarrier.ErrRevoked) || !strings.Contains(err.Error(), "device revoked: revoked by test") {
			t.Errorf("Serve = %v, want ErrRevoked", err)
		}
		if err := testwait.Recv(t, calls, waitTimeout, "Invoke to fail"); !errors.Is(err, carrier.ErrNodeGone) {
			t.Errorf("Invoke = %v, want ErrNodeGone", err)
		}
		if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.ID != d.ID() || g.Reason != "revoked by test" {
			t.Errorf("NodeGone(%s, %q)", g.ID, g.Reason)
		}
		if got := f.Sessions.Disconnect(d.ID(), ""); got != 0 {
			t.Errorf("second Disconnect ended %d", got)
		}
		if _, err := nodegrpc.Dial(t.Context(), f.sessionConfig(d)); !errors.Is(err, nodecarrier.ErrRevoked) {
			t.Errorf("Dial after revocation = %v, want ErrRevoked", err)
		}
	})

	t.Run("Disconnect forgets a pending registration", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, time.Second)
		d := testpki.NewDevice(t, f.CA)
		client := f.rawClient(t, d.Cert)
		if _, err := client.RegisterNode(t.Context(), &nodev1.RegisterNode{}); err != nil {
			t.Fatal(err)
		}
		testwait.Recv(t, f.Runtime.Registered, waitTimeout, "NodeRegistered")
		if got := f.Sessions.Disconnect(d.ID(), "removed"); got != 0 {
			t.Errorf("Disconnect ended %d sessions, want 0", got)
		}
		st := recvStatus(t, openStream(t, client))
		if st.Code() != codes.FailedPrecondition {
			t.Errorf("StreamEvents after Disconnect = %v, want FailedPrecondition", st)
		}
	})
}

// A store that fails while an RPC's certificate is checked is answered
// Unavailable with the wait, which the node reads as a busy gateway, not
// as a refused certificate; it connects once the store answers.
func TestStoreFailureAtAuthenticationIsBusy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	f.Devices.Fail(errors.New("database is locked"))
	d := testpki.NewDevice(t, f.CA)
	_, err := nodegrpc.Dial(t.Context(), f.sessionConfig(d))
	if wait, ok := nodecarrier.RetryAfter(err); !ok || wait < carrier.BusyRetryMin || wait > carrier.BusyRetryMax ||
		errors.Is(err, nodecarrier.ErrCertificateRefused) {
		t.Fatalf("Dial = %v, want the gateway busy with a wait of 2–10 s", err)
	}
	f.Devices.Fail(nil)
	conn, err := nodegrpc.Dial(t.Context(), f.sessionConfig(d))
	if err != nil {
		t.Fatalf("Dial once the store answers: %v", err)
	}
	conn.Close()
}

func TestRegistryRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		refusal error
		code    codes.Code
		want    error
	}{
		{"unknown device", errors.New("unknown device"), codes.FailedPrecondition, nodecarrier.ErrRegistrationRefused},
		{"revoked", fmt.Errorf("device x: %w", identity.ErrRevoked), codes.PermissionDenied, nodecarrier.ErrRevoked},
		// The store failed: the node is asked to come back, its
		// certificate is not in question.
		{"store failed", carrier.Busy(errors.New("database is locked")), codes.Unavailable, nodecarrier.ErrGatewayBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, time.Second)
			f.Runtime.Refuse.Store(&tt.refusal)
			d := testpki.NewDevice(t, f.CA)
			_, err := f.rawClient(t, d.Cert).RegisterNode(t.Context(), &nodev1.RegisterNode{})
			wantCode(t, err, tt.code)
			if _, err := nodegrpc.Dial(t.Context(), f.sessionConfig(d)); !errors.Is(err, tt.want) {
				t.Errorf("Dial = %v, want %v", err, tt.want)
			}
			testwait.None(t, f.Runtime.Ready, "NodeReady")
			testwait.None(t, f.Runtime.Gone, "NodeGone")
		})
	}
}

// TestRegistrationsDoNotWaitForEachOther: while one device's RegisterNode
// is held in the runtime (testregistry.HoldDevice, as a write waiting for
// the store's lock), another device registers and opens its session.
func TestRegistrationsDoNotWaitForEachOther(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 5*time.Second)
	slow, quick := testpki.NewDevice(t, f.CA), testpki.NewDevice(t, f.CA)
	held, release := f.Runtime.HoldDevice(slow.ID())
	defer release()
	dialed := make(chan error, 1)
	go func() {
		c, err := nodegrpc.Dial(t.Context(), f.sessionConfig(slow))
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	testwait.Recv(t, held, waitTimeout, "the slow device's registration to be held")

	f.runNode(t, f.sessionConfig(quick))
	if got := testwait.Recv(t, f.Runtime.Ready, waitTimeout, "the other device's session while the first one's registration is held"); got.DeviceID != quick.ID() {
		t.Fatalf("NodeReady(%s) first, want %s", got.DeviceID, quick.ID())
	}
	testwait.None(t, dialed, "the held device's Dial")
	release()
	if err := testwait.Recv(t, dialed, waitTimeout, "the held device's Dial once released"); err != nil {
		t.Fatalf("the held device's Dial: %v", err)
	}
}

func TestLeaseLapses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 300*time.Millisecond)
	d := testpki.NewDevice(t, f.CA)
	str, _ := rawSession(t, f.rawClient(t, d.Cert))
	testwait.Recv(t, f.Runtime.Ready, waitTimeout, "NodeReady")

	// A renewal is granted with its sequence number.
	if err := str.Send(&nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: 7}}}); err != nil {
		t.Fatal(err)
	}
	fr, err := str.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if g := fr.GetLeaseGranted(); g == nil || g.GetSequence() != 7 || g.GetLeaseTtlMs() != 300 {
		t.Errorf("answer to renewal 7: %v", fr)
	}
	if id := testwait.Recv(t, f.Runtime.Renewed, waitTimeout, "NodeRenewed"); id != d.ID() {
		t.Errorf("NodeRenewed(%s)", id)
	}

	// Silent from here on: the lease lapses.
	start := time.Now()
	st := recvStatus(t, str)
	if st.Code() != codes.DeadlineExceeded || st.Message() != "lease expired" {
		t.Errorf("stream ended with %v, want DeadlineExceeded \"lease expired\"", st)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("the lease lapsed after %v, before its 300ms", waited)
	}
	if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.ID != d.ID() || g.Reason != "lease expired" {
		t.Errorf("NodeGone(%s, %q)", g.ID, g.Reason)
	}
	if s := f.Sessions.Sessions(); len(s) != 0 {
		t.Errorf("Sessions() = %+v", s)
	}
}

func TestStreamNeedsRegistration(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)

	t.Run("never registered", func(t *testing.T) {
		t.Parallel()
		st := recvStatus(t, openStream(t, f.rawClient(t, testpki.NewDevice(t, f.CA).Cert)))
		if st.Code() != codes.FailedPrecondition || st.Message() != "call RegisterNode first" {
			t.Errorf("StreamEvents = %v, want FailedPrecondition", st)
		}
	})
	t.Run("another device registered", func(t *testing.T) {
		t.Parallel()
		registered := testpki.NewDevice(t, f.CA)
		if _, err := f.rawClient(t, registered.Cert).RegisterNode(t.Context(), &nodev1.RegisterNode{}); err != nil {
			t.Fatal(err)
		}
		st := recvStatus(t, openStream(t, f.rawClient(t, testpki.NewDevice(t, f.CA).Cert)))
		wantCode(t, st.Err(), codes.FailedPrecondition)
	})
	t.Run("one registration opens one session", func(t *testing.T) {
		t.Parallel()
		client := f.rawClient(t, testpki.NewDevice(t, f.CA).Cert)
		rawSession(t, client)
		st := recvStatus(t, openStream(t, client))
		wantCode(t, st.Err(), codes.FailedPrecondition)
	})
}

func TestRegistrationExpires(t *testing.T) {
	t.Parallel()
	// The gateway's clock jumps past the lease between RegisterNode and
	// StreamEvents.
	var offset atomic.Int64
	f := newFixtureWith(t, options{ttl: time.Second, now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	client := f.rawClient(t, testpki.NewDevice(t, f.CA).Cert)
	if _, err := client.RegisterNode(t.Context(), &nodev1.RegisterNode{}); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(2 * time.Second))
	st := recvStatus(t, openStream(t, client))
	wantCode(t, st.Err(), codes.FailedPrecondition)
}

func TestSecondSessionReplacesFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	handler := func(name string) nodecarrier.InvokeHandler {
		return func(context.Context, *nodev1.Invoke, func(string)) *nodev1.Result {
			return &nodev1.Result{Ok: true, OutputJson: []byte(`"` + name + `"`)}
		}
	}
	cfg := f.sessionConfig(d)
	cfg.Invoke = handler("first")
	first := f.runNode(t, cfg)
	testwait.Recv(t, f.Runtime.Ready, waitTimeout, "first NodeReady")

	cfg.Invoke = handler("second")
	second := f.runNode(t, cfg)
	testwait.Recv(t, f.Runtime.Ready, waitTimeout, "second NodeReady")
	if err := testwait.Recv(t, first.done, waitTimeout, "first Serve to return"); !errors.Is(err, nodecarrier.ErrReplaced) {
		t.Errorf("first Serve = %v, want ErrReplaced", err)
	}
	testwait.None(t, f.Runtime.Gone, "NodeGone for the replaced session")
	if s := f.Sessions.Sessions(); len(s) != 1 {
		t.Errorf("Sessions() = %+v, want one", s)
	}
	res, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "which"}, nil)
	if err != nil || string(res.GetOutputJson()) != `"second"` {
		t.Errorf("Invoke = %v, %v; want the second session's answer", res, err)
	}

	second.cancel()
	testwait.Recv(t, second.done, waitTimeout, "second Serve to return")
	if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.ID != d.ID() {
		t.Errorf("NodeGone(%s)", g.ID)
	}
	testwait.None(t, f.Runtime.Gone, "second NodeGone")
}

func TestProtocolViolations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame *nodev1.Frame
		code  codes.Code
	}{
		{"empty frame", &nodev1.Frame{}, codes.InvalidArgument},
		{"result on the stream", &nodev1.Frame{Body: &nodev1.Frame_Result{Result: &nodev1.Result{RequestId: "r"}}}, codes.InvalidArgument},
		{"welcome from the node", &nodev1.Frame{Body: &nodev1.Frame_Welcome{Welcome: &nodev1.Welcome{}}}, codes.InvalidArgument},
		{"register on the stream", &nodev1.Frame{Body: &nodev1.Frame_RegisterNode{RegisterNode: &nodev1.RegisterNode{}}}, codes.InvalidArgument},
		{"renew certificate", &nodev1.Frame{Body: &nodev1.Frame_RenewCertificate{RenewCertificate: &nodev1.RenewCertificate{}}}, codes.InvalidArgument},
		// Over the frame limit: the server's MaxRecvMsgSize refuses it.
		{"oversized event", &nodev1.Frame{Body: &nodev1.Frame_Event{Event: &nodev1.NodeEvent{Message: strings.Repeat("x", 2<<20)}}}, codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, time.Second)
			d := testpki.NewDevice(t, f.CA)
			str, _ := rawSession(t, f.rawClient(t, d.Cert))
			if err := str.Send(tt.frame); err != nil {
				t.Fatal(err)
			}
			st := recvStatus(t, str)
			wantCode(t, st.Err(), tt.code)
			if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.ID != d.ID() {
				t.Errorf("NodeGone(%s)", g.ID)
			}
			if s := f.Sessions.Sessions(); len(s) != 0 {
				t.Errorf("Sessions() = %+v", s)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	cfg := f.sessionConfig(d)
	started := make(chan struct{})
	cfg.Invoke = func(ctx context.Context, _ *nodev1.Invoke, _ func(string)) *nodev1.Result {
		close(started)
		<-ctx.Done()
		return &nodev1.Result{ErrorCode: "canceled"}
	}
	n := f.runNode(t, cfg)
	calls := make(chan error, 1)
	go func() {
		_, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "in-flight"}, nil)
		calls <- err
	}()
	testwait.Recv(t, started, waitTimeout, "the call to start")

	f.srv.Close() // returns once the handlers have
	if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.Reason != "gateway shutting down" {
		t.Errorf("NodeGone reason %q", g.Reason)
	}
	err := testwait.Recv(t, n.done, waitTimeout, "Serve to return")
	if within, ok := nodecarrier.ReconnectWithin(err); !errors.Is(err, nodecarrier.ErrGatewayShutdown) || !ok || within != carrier.ReconnectWindow(1) {
		t.Errorf("Serve = %v, want a GoAway with the window for one node (%v)", err, carrier.ReconnectWindow(1))
	}
	if err := testwait.Recv(t, calls, waitTimeout, "Invoke to fail"); !errors.Is(err, carrier.ErrNodeGone) {
		t.Errorf("Invoke = %v, want ErrNodeGone", err)
	}
	_, err = f.rawClient(t, d.Cert).RegisterNode(t.Context(), &nodev1.RegisterNode{})
	wantCode(t, err, codes.Unavailable)
	if _, err := nodegrpc.Dial(t.Context(), f.sessionConfig(d)); !errors.Is(err, nodecarrier.ErrGatewayShutdown) {
		t.Errorf("Dial after Close = %v, want ErrGatewayShutdown", err)
	}
}

func TestDial(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)

	t.Run("tries addresses in order", func(t *testing.T) {
		t.Parallel()
		// A loopback port nobody listens on.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		cfg := f.sessionConfig(testpki.NewDevice(t, f.CA))
		cfg.Addresses = []string{dead, f.addr}
		c, err := nodegrpc.Dial(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Dial = %v", err)
		}
		defer c.Close()
		testwait.Recv(t, f.Runtime.Ready, waitTimeout, "NodeReady")

		cfg.Addresses = []string{dead}
		if _, err := nodegrpc.Dial(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), dead) {
			t.Errorf("Dial to a dead address = %v", err)
		}
	})
	t.Run("gateway from another CA", func(t *testing.T) {
		t.Parallel()
		cfg := f.sessionConfig(testpki.NewDevice(t, f.CA))
		cfg.CACertificate = testpki.NewCA(t, "impostor").Certificate()
		_, err := nodegrpc.Dial(t.Context(), cfg)
		if !errors.Is(err, identity.ErrUntrusted) {
			t.Errorf("Dial = %v, want identity.ErrUntrusted", err)
		}
	})
	t.Run("gateway certificate for another host", func(t *testing.T) {
		t.Parallel()
		cfg := f.sessionConfig(testpki.NewDevice(t, f.CA))
		_, port, _ := net.SplitHostPort(f.addr)
		cfg.Addresses = []string{net.JoinHostPort("localhost", port)}
		_, err := nodegrpc.Dial(t.Context(), cfg)
		if !errors.Is(err, identity.ErrNotServerCertificate) {
			t.Errorf("Dial = %v, want identity.ErrNotServerCertificate", err)
		}
	})
	t.Run("config checked", func(t *testing.T) {
		t.Parallel()
		if _, err := nodegrpc.Dial(t.Context(), nodecarrier.Config{}); err == nil {
			t.Error("Dial accepted an empty config")
		}
	})
}

func TestRenewCertificateUnsupported(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	n := f.runNode(t, f.sessionConfig(testpki.NewDevice(t, f.CA)))
	_, err := n.conn.RenewCertificate(t.Context(), []byte("csr"))
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("RenewCertificate = %v, want errors.ErrUnsupported", err)
	}
	select {
	case err := <-n.done:
		t.Errorf("Serve returned %v", err)
	default:
	}
}

// A node without a handler refuses calls, naming itself in the result.
func TestCallWithoutHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	n := f.runNode(t, f.sessionConfig(d))
	res, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "no-handler", Capability: "x"}, nil)
	if err != nil || res.GetOk() || res.GetErrorCode() != "unknown_capability" {
		t.Errorf("Invoke without a handler = %v, %v", res, err)
	}
	if res.GetDeviceId() != d.ID().String() {
		t.Errorf("result names device %q, want %s", res.GetDeviceId(), d.ID())
	}
	select {
	case err := <-n.done:
		t.Errorf("Serve returned %v", err)
	default:
	}
}
