// Package testregistry is the gateway's side of a node session, as the
// carriers' tests (quiccarrier over QUIC, grpccarrier over gRPC) need it: a
// carrier.Runtime that puts each call on a channel for the test to read, a
// test Gateway (its CA, the devices it authenticates, its session table and
// a gRPC server configured as the gateway's), and what both carriers' tests
// do with a node (serve it in the background, echo or block its calls,
// benchmark calls to it).
package testregistry

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/wire"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// depth is how many calls of a kind may wait unread. The calls a test
// reads block the session when their channel is full, so a test that
// misses one hangs instead of passing.
const depth = 64

// Gone is one NodeGone call.
type Gone struct {
	ID     identity.DeviceID
	Reason string
}

// Registry records the calls a carrier makes.
type Registry struct {
	// CA issues renewed device certificates; without one, renewal is
	// refused.
	CA *identity.CA
	// Refuse, when set, is the error NodeRegistered fails with.
	Refuse atomic.Pointer[error]
	// Hold, when set, is called first by NodeRegistered with the device:
	// it may block, as the gateway's store write can (the seam between a
	// carrier and the store is the Runtime).
	Hold atomic.Pointer[func(identity.DeviceID)]

	Registered chan carrier.SessionInfo
	Ready      chan carrier.SessionInfo
	Renewed    chan identity.DeviceID
	Gone       chan Gone
	Caps       chan []*nodev1.Capability
	Events     chan *nodev1.NodeEvent
}

var _ carrier.Runtime = (*Registry)(nil)

// New makes a Registry that renews certificates from ca (nil refuses).
func New(ca *identity.CA) *Registry {
	return &Registry{
		CA:         ca,
		Registered: make(chan carrier.SessionInfo, depth),
		Ready:      make(chan carrier.SessionInfo, depth),
		Renewed:    make(chan identity.DeviceID, depth),
		Gone:       make(chan Gone, depth),
		Caps:       make(chan []*nodev1.Capability, depth),
		Events:     make(chan *nodev1.NodeEvent, depth),
	}
}

func (r *Registry) NodeRegistered(_ context.Context, s carrier.SessionInfo) error {
	if hold := r.Hold.Load(); hold != nil {
		(*hold)(s.DeviceID)
	}
	if err := r.Refuse.Load(); err != nil {
		return *err
	}
	r.Registered <- s
	return nil
}

// HoldDevice makes NodeRegistered of device id block, as a store write
// stuck on a lock would, until release is called (release may be called
// more than once); held receives once it blocks.
func (r *Registry) HoldDevice(id identity.DeviceID) (held <-chan struct{}, release func()) {
	h := make(chan struct{}, 1)
	released := make(chan struct{})
	var once sync.Once
	hold := func(d identity.DeviceID) {
		if d != id {
			return
		}
		select {
		case h <- struct{}{}:
		default:
		}
		<-released
	}
	r.Hold.Store(&hold)
	return h, func() { once.Do(func() { close(released) }) }
}

func (r *Registry) NodeReady(s carrier.SessionInfo) {
	select {
	case r.Ready <- s:
	default: // only some tests wait for it
	}
}

func (r *Registry) NodeRenewed(id identity.DeviceID, _ time.Time) {
	select {
	case r.Renewed <- id:
	default: // tests wait for a few; a lease renews for as long as it runs
	}
}

func (r *Registry) NodeGone(s carrier.SessionInfo, _ time.Time, reason string) {
	r.Gone <- Gone{s.DeviceID, reason}
}

func (r *Registry) CapabilitiesChanged(_ identity.DeviceID, caps []*nodev1.Capability) {
	r.Caps <- caps
}

func (r *Registry) NodeEvent(_ identity.DeviceID, ev *nodev1.NodeEvent) { r.Events <- ev }

func (r *Registry) RenewCertificate(_ context.Context, id identity.DeviceID, csr []byte) ([]byte, error) {
	if r.CA == nil {
		return nil, errors.New("this registry renews no certificates")
	}
	cert, err := r.CA.IssueDeviceCertificate(csr, identity.IssueOptions{Now: time.Now()})
	if err != nil {
		return nil, err
	}
	if identity.DeviceIDFromPublicKey(cert.PublicKey.(ed25519.PublicKey)) != id {
		return nil, errors.New("another device's key")
	}
	return cert.Raw, nil
}

// Gateway is what a carrier's tests hold of a test gateway: a CA, the
// devices it authenticates, a recording Runtime and the session table.
type Gateway struct {
	CA       *identity.CA
	Devices  *Devices
	Runtime  *Registry
	Sessions *carrier.Registry
}

// NewGateway makes a test gateway whose clock is now (nil: time.Now).
func NewGateway(t testing.TB, now func() time.Time) *Gateway {
	t.Helper()
	ca := testpki.NewCA(t, "test gateway")
	g := &Gateway{CA: ca, Devices: &Devices{CA: ca}, Runtime: New(ca)}
	sessions, err := carrier.NewRegistry(carrier.Config{Runtime: g.Runtime, Authenticate: g.Devices.Authenticate, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	g.Sessions = sessions
	return g
}

// Common configures a carrier of g with lease ttl.
func (g *Gateway) Common(ttl time.Duration) carrier.Common {
	return carrier.Common{Registry: g.Sessions, LeaseTTL: ttl, GatewayName: "test gateway"}
}

// NodeConfig is the session config of a test node, device d, that dials
// addr and registers with caps.
func (g *Gateway) NodeConfig(addr string, d *testpki.Device, caps ...*nodev1.Capability) nodecarrier.Config {
	return nodecarrier.Config{
		Addresses:         []string{addr},
		ClientCertificate: func() (*tls.Certificate, error) { return d.Cert, nil },
		CACertificate:     g.CA.Certificate(),
		Register:          &nodev1.RegisterNode{Name: "test node", Platform: "linux/amd64", Version: "0.0.1", Capabilities: caps},
	}
}

// GRPCServer is a grpc.Server configured as the gateway configures its
// own: TLS 1.3 with a server certificate from g's CA that only requests a
// client certificate (the Pairing service shares the listener), and the
// frame limit on received messages.
func (g *Gateway) GRPCServer(t testing.TB) *grpc.Server {
	cert := testpki.ServerCert(t, g.CA)
	return grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			MinVersion: tls.VersionTLS13,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return cert, nil
			},
			ClientAuth: tls.RequestClientCert,
		})),
		grpc.MaxRecvMsgSize(wire.MaxFrameSize),
	)
}

// serveTimeout bounds waiting for a node's Serve to return once stopped.
const serveTimeout = 5 * time.Second

// Serve runs serve (a node's session) in the background until stop is
// called or the test ends; done receives what it returned.
func Serve(t testing.TB, serve func(context.Context) error) (stop context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		result <- serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(serveTimeout):
			t.Errorf("the node's session did not end within %v", serveTimeout)
		}
	})
	return cancel, result
}

// Echo is a node's call handler that answers every call with its
// arguments.
func Echo(_ context.Context, inv *nodev1.Invoke, _ func(string)) *nodev1.Result {
	return &nodev1.Result{Ok: true, OutputJson: inv.GetArgsJson()}
}

// UntilCanceled is a node's call handler that sends each call's request ID
// on started, waits for the call's context to end (for a few seconds at
// most) and sends why it ended on causes.
func UntilCanceled(started chan<- string, causes chan<- error) nodecarrier.InvokeHandler {
	return func(ctx context.Context, inv *nodev1.Invoke, _ func(string)) *nodev1.Result {
		started <- inv.GetRequestId()
		select {
		case <-ctx.Done():
			causes <- context.Cause(ctx)
		case <-time.After(serveTimeout):
			causes <- errors.New("the handler's context did not end")
		}
		return &nodev1.Result{ErrorCode: "canceled"}
	}
}

// OutlivingCalls sets cfg up for a test of calls that outlive their
// session: its handler is UntilCanceled, with started, and its Calls ends
// with end, which checks that the call had not ended before and then
// ends with end's cause.
func OutlivingCalls(t testing.TB, cfg *nodecarrier.Config) (started <-chan string, end func()) {
	start := make(chan string, 1)
	ended := make(chan error, 1)
	calls, stop := context.WithCancelCause(context.Background())
	t.Cleanup(func() { stop(nil) })
	cfg.Invoke = UntilCanceled(start, ended)
	cfg.Calls = calls
	return start, func() {
		t.Helper()
		select {
		case cause := <-ended:
			t.Fatalf("the call ended with its session: %v", cause)
		default:
		}
		errStop := errors.New("agent stopping")
		stop(errStop)
		select {
		case cause := <-ended:
			if !errors.Is(cause, errStop) {
				t.Fatalf("the call ended with %v, want the end of Calls", cause)
			}
		case <-time.After(serveTimeout):
			t.Fatal("the call did not end with Calls")
		}
	}
}

// BenchInvoke measures invoke, a carrier's Invoke: one call to device id,
// whose node answers with Echo, per iteration.
func BenchInvoke(b *testing.B, invoke func(context.Context, identity.DeviceID, *nodev1.Invoke, func(*nodev1.Progress)) (*nodev1.Result, error), id identity.DeviceID) {
	inv := &nodev1.Invoke{RequestId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Capability: "bench.echo", ArgsJson: []byte(`{"n":1}`)}
	b.ReportAllocs()
	for b.Loop() {
		res, err := invoke(b.Context(), id, inv, nil)
		if err != nil || !res.GetOk() {
			b.Fatal(err, res)
		}
	}
}

// Devices authenticates the devices of a test CA as a gateway does,
// refusing those the test revoked, and failing as a gateway whose store
// fails does while the test says so (Fail).
type Devices struct {
	CA      *identity.CA
	revoked sync.Map // identity.DeviceID -> bool
	failing atomic.Pointer[error]
}

// Authenticate verifies a device's chain against the CA.
func (d *Devices) Authenticate(raw [][]byte) (identity.DeviceID, error) {
	id, err := identity.VerifyDeviceCertificate(d.CA.Certificate(), raw, time.Now())
	if err != nil {
		return id, err
	}
	if err := d.failing.Load(); err != nil {
		return id, carrier.Busy(fmt.Errorf("checking device %s: %w", id, *err))
	}
	if _, ok := d.revoked.Load(id); ok {
		return id, fmt.Errorf("device %s: %w", id, identity.ErrRevoked)
	}
	return id, nil
}

// Fail makes Authenticate answer a good chain with err as the store's
// failure (a *carrier.BusyError), until Fail(nil).
func (d *Devices) Fail(err error) {
	if err == nil {
		d.failing.Store(nil)
		return
	}
	d.failing.Store(&err)
}

// Revoke makes Authenticate refuse device id as revoked.
func (d *Devices) Revoke(id identity.DeviceID) { d.revoked.Store(id, true) }
