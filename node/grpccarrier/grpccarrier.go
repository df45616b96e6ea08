// Package grpccarrier is the node's end of the node protocol over gRPC on
// TCP/TLS, for networks that block UDP. It offers what node/quiccarrier
// offers over QUIC, with node/carrier's Config and errors: Dial verifies the
// gateway against the pinned CA, presents the device certificate, calls
// RegisterNode and opens StreamEvents; Serve keeps the lease renewed, runs
// the calls the gateway sends on the stream and submits their results with
// SubmitCapabilityResult.
//
// The gateway opens the session by granting the lease (LeaseGranted,
// sequence 0), so Dial returns only once the gateway will route calls here.
// The gateway ends a session with a status code, which this package maps
// to node/carrier's errors (PermissionDenied: carrier.ErrRevoked; Aborted:
// carrier.ErrReplaced; DeadlineExceeded: carrier.ErrLeaseExpired;
// Unavailable "gateway shutting down": carrier.ErrGatewayShutdown;
// FailedPrecondition at registration: carrier.ErrRegistrationRefused;
// Unauthenticated: carrier.ErrCertificateRefused; InvalidArgument:
// carrier.ErrProtocol). Certificates do not renew over this carrier.
//
// It owns the node's gRPC carrier only; it must not import the QUIC carrier
// or quic-go (the fallback works where QUIC does not), the gateway or
// anything from the GUI.
package grpccarrier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

const (
	// registerTimeout bounds RegisterNode and the opening of the session.
	registerTimeout = 10 * time.Second
	// submitTimeout bounds submitting one result.
	submitTimeout = 10 * time.Second
	// closeTimeout bounds waiting for the gateway to end the stream when
	// the node leaves.
	closeTimeout = time.Second
	// pingTimeout is how long a keepalive ping waits for its answer
	// before the connection is closed: with wire.GRPCPingInterval, a dead
	// connection is noticed within 15 s.
	pingTimeout = 5 * time.Second
)

// Conn is a registered session over gRPC.
type Conn struct {
	s      *carrier.Session
	cc     *grpc.ClientConn
	client nodev1.NodeClient
	stream grpc.BidiStreamingClient[nodev1.Frame, nodev1.Frame]

	// cancelStream ends the stream; teardown once closes everything and
	// then closes torn, with teardownErr set.
	cancelStream context.CancelFunc
	teardownOnce sync.Once
	torn         chan struct{}
	teardownErr  error

	// sendMu serializes Send on stream.
	sendMu sync.Mutex

	// closed ends when Close is called (closeNow).
	closed   context.Context
	closeNow context.CancelFunc
	// served is set by whoever reads the stream: Serve, or Close when
	// Serve never ran.
	served atomic.Bool

	// done is closed when Serve's reader ends; err is why.
	done chan struct{}
	err  error

	// callsMu guards calls.
	callsMu sync.Mutex
	// calls maps the request ID of each running call to it.
	calls map[string]*carrier.Call
}

var _ carrier.Conn = (*Conn)(nil)

// Dial connects to the first address that answers, registers and opens the
// session. A refusal of this device (revoked, bad certificate, refused
// registration) is final and stops at that address; other failures try the
// next one. Errors wrap node/carrier's errors, identity's errors when the
// gateway's certificate does not verify, or a gRPC status.
func Dial(ctx context.Context, cfg carrier.Config) (*Conn, error) {
	return carrier.DialEach(ctx, cfg, "gRPC", dial)
}

func dial(ctx context.Context, cfg carrier.Config, addr string, tlsConf *tls.Config) (*Conn, error) {
	// gRPC reports a failed handshake as a status with text only; keep
	// identity's error to return it.
	var verifyErr atomic.Pointer[error]
	verify := tlsConf.VerifyPeerCertificate
	tlsConf.VerifyPeerCertificate = func(rawCerts [][]byte, chains [][]*x509.Certificate) error {
		err := verify(rawCerts, chains)
		if err != nil {
			verifyErr.Store(&err)
		}
		return err
	}
	dialer := &net.Dialer{Timeout: carrier.HandshakeIdleTimeout}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}),
		// HTTP/2 pings find a dead TCP connection even while a send is
		// stuck in its buffers.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    wire.GRPCPingInterval,
			Timeout: pingTimeout,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(wire.MaxFrameSize),
			grpc.MaxCallSendMsgSize(wire.MaxFrameSize),
		),
	)
	if err != nil {
		return nil, err
	}
	c, err := open(ctx, cfg, cc)
	if err != nil {
		_ = cc.Close()
		if p := verifyErr.Load(); p != nil {
			return nil, fmt.Errorf("%w: %w", *p, err)
		}
		return nil, err
	}
	return c, nil
}

// open registers and opens the session on cc.
func open(ctx context.Context, cfg carrier.Config, cc *grpc.ClientConn) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	client := nodev1.NewNodeClient(cc)
	w, err := client.RegisterNode(ctx, cfg.Register)
	if err != nil {
		return nil, fmt.Errorf("registering: %w", classify(err, rpcRegister))
	}
	// The stream outlives ctx: it ends with Serve or Close.
	sctx, cancelStream := context.WithCancel(context.Background())
	stream, err := client.StreamEvents(sctx)
	if err != nil {
		cancelStream()
		return nil, fmt.Errorf("opening the session: %w", classify(err, rpcStream))
	}
	stop := context.AfterFunc(ctx, cancelStream)
	f, err := stream.Recv()
	if !stop() {
		cancelStream()
		return nil, fmt.Errorf("opening the session: %w", ctx.Err())
	}
	if err != nil {
		cancelStream()
		return nil, fmt.Errorf("opening the session: %w", classify(err, rpcStream))
	}
	if f.GetLeaseGranted() == nil {
		cancelStream()
		return nil, fmt.Errorf("%w: expected LeaseGranted, got %T", carrier.ErrProtocol, f.Body)
	}
	closed, closeNow := context.WithCancel(context.Background())
	c := &Conn{
		cc:           cc,
		client:       client,
		stream:       stream,
		cancelStream: cancelStream,
		closed:       closed,
		closeNow:     closeNow,
		torn:         make(chan struct{}),
		done:         make(chan struct{}),
		calls:        make(map[string]*carrier.Call),
	}
	c.s = carrier.NewSession(cfg, w, c.send, "remote", cc.Target(), "transport", wire.TransportGRPC)
	return c, nil
}

// Welcome is what the gateway answered the registration with.
func (c *Conn) Welcome() *nodev1.Welcome { return c.s.Welcome() }

// Address is the gateway address the session was dialed at.
func (c *Conn) Address() string { return c.s.Address() }

// Close ends the session (the gateway sees the node disconnect) and
// returns once the connection is closed. A running Serve ends its calls
// (carrier.Session.EndCalls), waits for those it ended and returns.
func (c *Conn) Close() error {
	c.closeNow()
	if c.served.CompareAndSwap(false, true) {
		// Serve never ran: read the stream's end here.
		go func() {
			defer close(c.done)
			for {
				if _, err := c.stream.Recv(); err != nil {
					c.err = errClosed
					return
				}
			}
		}()
		c.closeGracefully()
		err := c.teardown()
		<-c.done
		return err
	}
	// Serve closes gracefully, then tears down; do it here if Serve is
	// stuck (say, sending to a gateway that does not read).
	t := time.NewTimer(2 * closeTimeout)
	defer t.Stop()
	select {
	case <-c.torn:
	case <-t.C:
	}
	return c.teardown()
}

// closeGracefully ends the node's side of the stream and waits (at most
// closeTimeout) for the gateway to end its side, so the gateway sees the
// node leave rather than the connection drop.
func (c *Conn) closeGracefully() {
	c.sendMu.Lock()
	_ = c.stream.CloseSend()
	c.sendMu.Unlock()
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
}

// teardown ends the stream and the connection, once.
func (c *Conn) teardown() error {
	c.teardownOnce.Do(func() {
		c.cancelStream()
		c.teardownErr = c.cc.Close()
		close(c.torn)
	})
	<-c.torn
	return c.teardownErr
}

// errClosed is what Serve returns after Close.
var errClosed = fmt.Errorf("session closed: %w", net.ErrClosed)

// Serve keeps the lease renewed (every LeaseTTL/3) and runs the calls the
// gateway sends until ctx ends (it then returns ctx's error), Close is
// called, or the session fails. It ends the calls still running as
// carrier.Session.EndCalls says, waits for those it ended, and closes the
// session before it returns. Call it once.
func (c *Conn) Serve(ctx context.Context) error {
	if !c.served.CompareAndSwap(false, true) {
		if c.closed.Err() != nil {
			return errClosed
		}
		return errors.New("grpccarrier: Serve called twice")
	}
	leaseCtx, endLease := context.WithCancelCause(ctx)
	defer endLease(nil)
	defer context.AfterFunc(c.closed, func() { endLease(errClosed) })()
	go func() {
		defer close(c.done)
		c.err = c.readLoop()
		endLease(c.err)
	}()
	err := c.s.KeepLease(leaseCtx)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	c.s.EndCalls(ctx)
	if ctx.Err() != nil || errors.Is(err, errClosed) {
		c.closeGracefully()
	}
	_ = c.teardown()
	<-c.done // no call starts after this
	c.s.WaitCalls()
	return err
}

// readLoop reads frames until the stream ends and returns why. Every frame
// is a sign of life for the lease.
func (c *Conn) readLoop() error {
	for {
		f, err := c.stream.Recv()
		if err != nil {
			if c.closed.Err() != nil {
				return errClosed
			}
			return fmt.Errorf("reading the session: %w", classify(err, rpcStream))
		}
		c.s.Alive()
		switch body := f.Body.(type) {
		case *nodev1.Frame_LeaseGranted:
		case *nodev1.Frame_Invoke:
			c.startCall(body.Invoke)
		case *nodev1.Frame_Cancel:
			c.cancelCall(body.Cancel)
		case *nodev1.Frame_Error:
			return carrier.ErrorFrame(body.Error)
		case *nodev1.Frame_GoAway:
			return carrier.GoAway(body.GoAway)
		default:
			return fmt.Errorf("%w: unexpected frame %T", carrier.ErrProtocol, f.Body)
		}
	}
}

// send sends one frame on the stream.
func (c *Conn) send(f *nodev1.Frame) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.stream.Send(f); err != nil {
		// io.EOF: the stream is over; the reader learns why.
		select {
		case <-c.done:
			return c.err
		default:
			return fmt.Errorf("the session has ended: %w", classify(err, rpcStream))
		}
	}
	return nil
}

// Probe checks that the gateway still answers on the session (see
// carrier.Session.Probe).
func (c *Conn) Probe(ctx context.Context) error { return c.s.Probe(ctx) }

// SendCapabilities replaces the node's manifest at the gateway.
func (c *Conn) SendCapabilities(caps []*nodev1.Capability) error { return c.s.SendCapabilities(caps) }

// SendEvent reports an event to the gateway.
func (c *Conn) SendEvent(ev *nodev1.NodeEvent) error { return c.s.SendEvent(ev) }

// RenewCertificate is not available over gRPC; the error wraps
// errors.ErrUnsupported.
func (c *Conn) RenewCertificate(context.Context, []byte) ([]byte, error) {
	return nil, fmt.Errorf("renewing the certificate over gRPC: %w: certificates renew over QUIC, or by challenge at the next connection", errors.ErrUnsupported)
}
