package grpccarrier_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/grpccarrier"
	"github.com/palyra/palyra-go/internal/leakcheck"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/testwait"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	nodegrpc "github.com/palyra/palyra-go/node/grpccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// waitTimeout bounds every wait in these tests.
const waitTimeout = 5 * time.Second

// fixture is a CA with a gateway's gRPC server on loopback, configured as
// the gateway configures it: TLS 1.3 that only requests a client
// certificate (the Pairing service shares the listener), and the frame
// limit on received messages.
type fixture struct {
	*testregistry.Gateway
	srv  *grpccarrier.Server
	addr string
}

type options struct {
	ttl time.Duration
	now func() time.Time
}

func newFixture(t testing.TB, ttl time.Duration) *fixture {
	return newFixtureWith(t, options{ttl: ttl})
}

func newFixtureWith(t testing.TB, o options) *fixture {
	t.Helper()
	f := &fixture{Gateway: testregistry.NewGateway(t, o.now)}
	srv, err := grpccarrier.NewServer(grpccarrier.Config{Common: f.Common(o.ttl)})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	gs := f.GRPCServer(t)
	srv.Register(gs)
	healthpb.RegisterHealthServer(gs, health.NewServer()) // the floor for benchmarks
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	t.Cleanup(func() {
		// As the gateway stops: end the sessions, then a bounded
		// GracefulStop.
		srv.Close()
		stopped := make(chan struct{})
		go func() {
			gs.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(waitTimeout):
			t.Errorf("GracefulStop did not finish within %v", waitTimeout)
			gs.Stop()
			<-stopped
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func (f *fixture) sessionConfig(d *testpki.Device) nodecarrier.Config {
	return f.NodeConfig(f.addr, d, &nodev1.Capability{Name: "test.echo", Enabled: true})
}

// node is a nodegrpc.Conn whose Serve runs in the background.
type node struct {
	conn   *nodegrpc.Conn
	cancel context.CancelFunc
	done   <-chan error
}

// runNode dials and serves cfg until the test ends.
func (f *fixture) runNode(t testing.TB, cfg nodecarrier.Config) *node {
	t.Helper()
	c, err := nodegrpc.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	stop, done := testregistry.Serve(t, c.Serve)
	return &node{conn: c, cancel: stop, done: done}
}

// rawClient is a Node client with cert (none when nil), for what the
// session package would never send.
func (f *fixture) rawClient(t testing.TB, cert *tls.Certificate) nodev1.NodeClient {
	t.Helper()
	if cert == nil {
		cert = &tls.Certificate{}
	}
	cc, err := grpc.NewClient("passthrough:///"+f.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // a test client: the server is ours
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return nodev1.NewNodeClient(cc)
}

type rawStream = grpc.BidiStreamingClient[nodev1.Frame, nodev1.Frame]

// rawSession registers with client and opens StreamEvents, reading the
// opening LeaseGranted. The stream ends with the test.
func rawSession(t testing.TB, client nodev1.NodeClient) (rawStream, *nodev1.Welcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	w, err := client.RegisterNode(ctx, &nodev1.RegisterNode{Name: "raw"})
	if err != nil {
		t.Fatalf("RegisterNode: %v", err)
	}
	str := openStream(t, client)
	f, err := str.Recv()
	if err != nil {
		t.Fatalf("reading the opening frame: %v", err)
	}
	if g := f.GetLeaseGranted(); g == nil || g.GetSequence() != 0 {
		t.Fatalf("opening frame %v, want LeaseGranted 0", f)
	}
	return str, w
}

// openStream opens StreamEvents; it ends with the test.
func openStream(t testing.TB, client nodev1.NodeClient) rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	str, err := client.StreamEvents(ctx)
	if err != nil {
		t.Fatalf("StreamEvents: %v", err)
	}
	return str
}

// recvStatus reads str until it ends and returns the status it ended
// with; frames before the end are skipped (at most a few).
func recvStatus(t *testing.T, str rawStream) *status.Status {
	t.Helper()
	c := make(chan error, 1)
	go func() {
		for range 100 {
			if _, err := str.Recv(); err != nil {
				c <- err
				return
			}
		}
		c <- errors.New("the stream did not end within 100 frames")
	}()
	return status.Convert(testwait.Recv(t, c, waitTimeout, "the stream to end"))
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Errorf("got %v (%v), want %v", got, err, code)
	}
}
