// Package grpccarrier is the node's end of the node protocol over gRPC on
// TCP/TLS, for networks that block UDP. It offers what node/quiccarrier offers
// over QUIC, with the same Config and the same errors: Dial verifies the
// gateway against the pinned CA, presents the device certificate, calls
// RegisterNode and opens StreamEvents; Serve keeps the lease renewed, runs
// the calls the gateway sends on the stream and submits their results with
// SubmitCapabilityResult.
//
// The gateway opens the session by granting the lease (LeaseGranted,
// sequence 0), so Dial returns only once the gateway will route calls here.
// The gateway ends a session with a status code, which this package maps
// to node/quiccarrier's errors (PermissionDenied: quiccarrier.ErrRevoked; Aborted:
// quiccarrier.ErrReplaced; DeadlineExceeded: quiccarrier.ErrLeaseExpired;
// Unavailable "gateway shutting down": quiccarrier.ErrGatewayShutdown;
// FailedPrecondition at registration: quiccarrier.ErrRegistrationRefused;
// Unauthenticated: quiccarrier.ErrCertificateRefused; InvalidArgument:
// quiccarrier.ErrProtocol). Certificates do not renew over this carrier.
//
// It owns the node's gRPC carrier only; it must not import the gateway or
// anything from the GUI.
package grpccarrier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/quiccarrier"
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
	// defaultLeaseTTL is assumed when Welcome names none.
	defaultLeaseTTL = 30 * time.Second
)

// Conn is a registered session over gRPC.
type Conn struct {
	cfg     quiccarrier.Config
	log     *slog.Logger
	cc      *grpc.ClientConn
	client  nodev1.NodeClient
	stream  grpc.BidiStreamingClient[nodev1.Frame, nodev1.Frame]
	welcome *nodev1.Welcome
	ttl     time.Duration
	// skew is the gateway's clock minus ours, from Welcome, for reading
	// call deadlines.
	skew time.Duration

	// cancelStream ends the stream; teardown once closes everything and
	// then closes torn, with teardownErr set.
	cancelStream context.CancelFunc
	teardownOnce sync.Once
	torn         chan struct{}
	teardownErr  error

	// sendMu serializes Send on stream.
	sendMu sync.Mutex

	// closed is closed by Close.
	closed    chan struct{}
	closeOnce sync.Once
	// served is set by whoever reads the stream: Serve, or Close when
	// Serve never ran.
	served atomic.Bool

	// done is closed when Serve's reader ends; err is why.
	done chan struct{}
	err  error

	// callsMu guards calls.
	callsMu sync.Mutex
	// calls maps the request ID of each running call to it.
	calls map[string]*call
}

// Dial connects to the first address that answers, registers and opens the
// session. A refusal of this device (revoked, bad certificate, refused
// registration) is final and stops at that address; other failures try the
// next one. Errors wrap node/quiccarrier's errors, identity's errors when the
// gateway's certificate does not verify, or a gRPC status.
func Dial(ctx context.Context, cfg quiccarrier.Config) (*Conn, error) {
	return quiccarrier.DialEach(ctx, cfg, "gRPC", dial)
}

func dial(ctx context.Context, cfg quiccarrier.Config, addr string) (*Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	// gRPC reports a failed handshake as a status with text only; keep
	// identity's error to return it.
	var verifyErr atomic.Pointer[error]
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Addresses may be IP literals the certificate names as IP SANs,
		// and trust is the pinned CA, not the system roots: verification
		// is VerifyPeerCertificate's, with identity's rules.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			err := identity.VerifyServerCertificate(cfg.CACertificate, rawCerts, host, cfg.Now())
			if err != nil {
				verifyErr.Store(&err)
			}
			return err
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cfg.ClientCertificate()
		},
	}
	if _, err := netip.ParseAddr(host); err != nil {
		tlsConf.ServerName = host
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
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
func open(ctx context.Context, cfg quiccarrier.Config, cc *grpc.ClientConn) (*Conn, error) {
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
		return nil, fmt.Errorf("%w: expected LeaseGranted, got %T", quiccarrier.ErrProtocol, f.Body)
	}
	ttl := time.Duration(w.GetLeaseTtlMs()) * time.Millisecond
	if ttl <= 0 {
		ttl = defaultLeaseTTL
	}
	log := cfg.Logger.With("gateway", w.GetGatewayName(), "remote", cc.Target(), "transport", "grpc")
	log.Info("registered with gateway", "lease_ttl", ttl)
	return &Conn{
		cfg:          cfg,
		log:          log,
		cc:           cc,
		client:       client,
		stream:       stream,
		welcome:      w,
		ttl:          ttl,
		skew:         time.UnixMilli(w.GetServerTimeUnixMs()).Sub(cfg.Now()),
		cancelStream: cancelStream,
		closed:       make(chan struct{}),
		torn:         make(chan struct{}),
		done:         make(chan struct{}),
		calls:        make(map[string]*call),
	}, nil
}

// Welcome is what the gateway answered the registration with.
func (c *Conn) Welcome() *nodev1.Welcome { return c.welcome }

// Close ends the session (the gateway sees the node disconnect) and
// returns once the connection is closed. A running Serve cancels its calls,
// waits for them and returns.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
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
// called, or the session fails. It cancels the calls still running, waits
// for them, and closes the session before it returns. Call it once.
func (c *Conn) Serve(ctx context.Context) error {
	if !c.served.CompareAndSwap(false, true) {
		select {
		case <-c.closed:
			return errClosed
		default:
			return errors.New("grpccarrier: Serve called twice")
		}
	}
	callsCtx, stopCalls := context.WithCancelCause(ctx)
	var calls sync.WaitGroup
	alive := make(chan struct{}, 1)
	go func() {
		defer close(c.done)
		c.err = c.readLoop(callsCtx, &calls, alive)
	}()
	err := c.keepLease(ctx, alive)
	stopCalls(quiccarrier.ErrSessionEnded)
	if ctx.Err() != nil || errors.Is(err, errClosed) {
		c.closeGracefully()
	}
	_ = c.teardown()
	<-c.done // no call starts after this
	calls.Wait()
	return err
}

// keepLease sends a renewal every ttl/3 and expects a frame from the
// gateway within every lease; it returns why the session ends.
func (c *Conn) keepLease(ctx context.Context, alive <-chan struct{}) error {
	ticker := time.NewTicker(c.ttl / 3)
	defer ticker.Stop()
	lease := time.NewTimer(c.ttl)
	defer lease.Stop()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.closed:
			return errClosed
		case <-c.done:
			return c.err
		case <-alive:
			lease.Reset(c.ttl)
		case <-lease.C:
			return fmt.Errorf("%w: no answer from the gateway for %v", quiccarrier.ErrLeaseExpired, c.ttl)
		case <-ticker.C:
			seq++
			f := &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: seq}}}
			if err := c.send(f); err != nil {
				select {
				case <-c.done:
					return c.err // the reader knows better why
				default:
					return fmt.Errorf("renewing lease: %w", err)
				}
			}
		}
	}
}

// readLoop reads frames until the stream ends and returns why. Every frame
// is a sign of life for keepLease.
func (c *Conn) readLoop(callsCtx context.Context, calls *sync.WaitGroup, alive chan<- struct{}) error {
	for {
		f, err := c.stream.Recv()
		if err != nil {
			select {
			case <-c.closed:
				return errClosed
			default:
			}
			return fmt.Errorf("reading the session: %w", classify(err, rpcStream))
		}
		select {
		case alive <- struct{}{}:
		default:
		}
		switch body := f.Body.(type) {
		case *nodev1.Frame_LeaseGranted:
		case *nodev1.Frame_Invoke:
			c.startCall(callsCtx, calls, body.Invoke)
		case *nodev1.Frame_Cancel:
			c.cancelCall(body.Cancel)
		case *nodev1.Frame_Error:
			return errorFrameErr(body.Error)
		default:
			return fmt.Errorf("%w: unexpected frame %T", quiccarrier.ErrProtocol, f.Body)
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

// SendCapabilities replaces the node's manifest at the gateway.
func (c *Conn) SendCapabilities(caps []*nodev1.Capability) error {
	f := &nodev1.Frame{Body: &nodev1.Frame_CapabilitiesChanged{CapabilitiesChanged: &nodev1.CapabilitiesChanged{Capabilities: caps}}}
	if err := c.send(f); err != nil {
		return fmt.Errorf("sending capabilities: %w", err)
	}
	return nil
}

// SendEvent reports an event to the gateway.
func (c *Conn) SendEvent(ev *nodev1.NodeEvent) error {
	if err := c.send(&nodev1.Frame{Body: &nodev1.Frame_Event{Event: ev}}); err != nil {
		return fmt.Errorf("sending event: %w", err)
	}
	return nil
}

// RenewCertificate is not available over gRPC; the error wraps
// errors.ErrUnsupported.
func (c *Conn) RenewCertificate(context.Context, []byte) ([]byte, error) {
	return nil, fmt.Errorf("renewing the certificate over gRPC: %w: certificates renew over QUIC, or by challenge at the next connection", errors.ErrUnsupported)
}
