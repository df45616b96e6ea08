package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/quicecho"
	"github.com/palyra/palyra-go/internal/wire"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// The raw baselines: quic-go and grpc-go with nothing of Palyra's on top
// but mutual TLS with certificates of the same kind (Ed25519, from an
// identity CA) and messages of the same size.

// pki issues the baselines' certificates.
type pki struct {
	ca *identity.CA
}

func newPKI() (*pki, error) {
	ca, err := identity.NewCA(rand.Reader, "bench baseline", time.Now())
	if err != nil {
		return nil, err
	}
	return &pki{ca: ca}, nil
}

// cert is a certificate for 127.0.0.1, which serves as server and client
// certificate alike (the baselines' peers verify nothing but TLS does).
func (p *pki) cert() (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := p.ca.IssueServerCertificate(pub, "bench", []string{"127.0.0.1"}, identity.IssueOptions{Now: time.Now()})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: priv, Leaf: leaf}, nil
}

// invokeFrame is an Invoke frame as the gateway sends it for a bench.echo
// call: what the raw echoes carry.
func invokeFrame() ([]byte, error) {
	return wire.AppendFrame(nil, &nodev1.Frame{Body: &nodev1.Frame_Invoke{Invoke: &nodev1.Invoke{
		RequestId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Capability: EchoCapability.Spec.Name, ArgsJson: echoArgs,
	}}})
}

// grpcEcho is a grpc-go server with one unary method that answers with
// its request, over TLS that requires a client certificate.
type grpcEcho struct {
	srv  *grpc.Server
	ln   net.Listener
	done chan error
}

// echoServer is the service grpcEcho registers.
type echoServer interface{}

type echoImpl struct{}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "palyra.bench.Echo",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return in, nil
		},
	}},
}

const echoMethod = "/palyra.bench.Echo/Echo"

func startGRPCEcho(cert tls.Certificate, clientAuth tls.ClientAuthType) (*grpcEcho, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientAuth: clientAuth,
	})))
	srv.RegisterService(&echoDesc, echoImpl{})
	e := &grpcEcho{srv: srv, ln: ln, done: make(chan error, 1)}
	go func() { e.done <- srv.Serve(ln) }()
	return e, nil
}

func (e *grpcEcho) addr() string { return e.ln.Addr().String() }

func (e *grpcEcho) close() {
	e.srv.Stop()
	<-e.done
}

// dialGRPCEcho connects with cert as client certificate (none if it is
// empty), trusting any server: it is the caller's own, on loopback.
func dialGRPCEcho(addr string, cert tls.Certificate) (*grpc.ClientConn, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if len(cert.Certificate) > 0 {
		conf.Certificates = []tls.Certificate{cert}
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
}

func grpcEchoCall(ctx context.Context, conn *grpc.ClientConn, msg []byte) error {
	out := new(wrapperspb.BytesValue)
	if err := conn.Invoke(ctx, echoMethod, &wrapperspb.BytesValue{Value: msg}, out); err != nil {
		return err
	}
	if len(out.Value) != len(msg) {
		return fmt.Errorf("echo of %d bytes came back with %d", len(msg), len(out.Value))
	}
	return nil
}

// The raw fleet's sessions are a node's in what costs at idle and on a
// reconnect: the node's QUIC keepalive and idle timeout
// (node/quiccarrier), a small exchange every lease renewal interval on a
// control stream, and the node's reconnect backoff.
const (
	rawKeepAlive   = quiccarrier.KeepAlivePeriod
	rawIdleTimeout = quiccarrier.MaxIdleTimeout
	// rawRenewal is a node's lease renewal interval with any lease of
	// SilenceLimit or longer (the default's is 30 s).
	rawRenewal = nodecarrier.SilenceLimit / 3
	// rawMaxAttempts bounds one client's dials over a run.
	rawMaxAttempts = 100_000
)

// rawEnds are a quicecho server and one socket its clients share, as the
// nodes share theirs.
type rawEnds struct {
	srv  *quicecho.Server
	addr string
	cert tls.Certificate
	pc   net.PacketConn
	tr   *quic.Transport
}

func openRawEnds(p *pki) (*rawEnds, error) {
	cert, err := p.cert()
	if err != nil {
		return nil, err
	}
	srv, err := quicecho.Listen(cert, wire.ALPN)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &rawEnds{srv: srv, addr: srv.Addr(), cert: cert, pc: pc, tr: &quic.Transport{Conn: pc}}, nil
}

func (e *rawEnds) dial(ctx context.Context, conf *quic.Config) (*quicecho.Client, error) {
	c, err := quicecho.DialTransport(ctx, e.tr, e.addr, e.cert, wire.ALPN, conf)
	if err != nil {
		return nil, fmt.Errorf("raw quic-go baseline: %w", err)
	}
	return c, nil
}

func (e *rawEnds) close() {
	_ = e.srv.Close()
	_ = e.tr.Close()
	_ = e.pc.Close()
}

// rawFleet is n quic-go clients on one shared socket holding connections
// to a quicecho server, each redialing with the node's backoff when its
// connection ends.
type rawFleet struct {
	*rawEnds
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// up[i] is when client i's connection came up, zero while it is
	// down; guarded by mu.
	up      []time.Time
	changed chan struct{}
}

func startRawFleet(p *pki, n int) (*rawFleet, error) {
	ends, err := openRawEnds(p)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &rawFleet{rawEnds: ends, cancel: cancel, up: make([]time.Time, n), changed: make(chan struct{}, 1)}
	for i := range n {
		f.wg.Go(func() { f.client(ctx, i) })
	}
	return f, nil
}

// client keeps client i's connection up until ctx ends, as node.Agent.Run
// does: the backoff runs from an attempt's start, and starts over after a
// stable session.
func (f *rawFleet) client(ctx context.Context, i int) {
	backoff := nodecarrier.NewBackoff(nil)
	conf := &quic.Config{HandshakeIdleTimeout: nodecarrier.HandshakeIdleTimeout, KeepAlivePeriod: rawKeepAlive, MaxIdleTimeout: rawIdleTimeout}
	for range rawMaxAttempts {
		start := time.Now()
		c, err := f.dial(ctx, conf)
		var upAt time.Time
		if err == nil {
			upAt = time.Now()
			f.set(i, upAt)
			_ = renewLoop(ctx, c)
			_ = c.Close()
			f.set(i, time.Time{})
			backoff.SessionEnded(time.Since(upAt))
		}
		if ctx.Err() != nil {
			return
		}
		wait := backoff.Next()
		if upAt.IsZero() {
			wait = max(0, wait-time.Since(start))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// renewLoop sends a lease-sized message on a control stream every
// rawRenewal and reads its echo, until the connection or ctx ends.
func renewLoop(ctx context.Context, c *quicecho.Client) error {
	str, err := c.Stream(ctx)
	if err != nil {
		return err
	}
	msg := make([]byte, 16)
	buf := make([]byte, len(msg))
	tick := time.NewTicker(rawRenewal)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			return errors.New("connection closed")
		case <-tick.C:
		}
		if _, err := str.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(str, buf); err != nil {
			return err
		}
	}
}

func (f *rawFleet) set(i int, at time.Time) {
	f.mu.Lock()
	f.up[i] = at
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// count is how many clients are connected since after t.
func (f *rawFleet) count(after time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, at := range f.up {
		if !at.IsZero() && at.After(after) {
			n++
		}
	}
	return n
}

// wait waits until done(count(after)) holds or ctx ends.
func (f *rawFleet) wait(ctx context.Context, what string, after time.Time, done func(int) bool) error {
	for {
		n := f.count(after)
		if done(n) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("raw quic-go baseline: waiting until %s: %d of %d clients are: %w", what, n, len(f.up), context.Cause(ctx))
		case <-f.changed:
		}
	}
}

// stopServer closes the server; its clients hear of it at once.
func (f *rawFleet) stopServer() error { return f.srv.Close() }

// startServer listens again on the stopped server's address.
func (f *rawFleet) startServer() error {
	srv, err := quicecho.ListenAddr(f.addr, f.cert, wire.ALPN)
	if err != nil {
		return fmt.Errorf("restarting the raw quic-go server: %w", err)
	}
	f.srv = srv
	return nil
}

func (f *rawFleet) close() {
	f.cancel()
	f.wg.Wait()
	f.rawEnds.close()
}
