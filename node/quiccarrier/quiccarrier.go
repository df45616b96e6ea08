// Package quiccarrier is the node's end of the node protocol over QUIC: it
// dials the gateway with the device certificate, verifies the gateway
// against the pinned CA, registers, keeps the lease renewed, runs the calls
// the gateway opens streams for and can renew the device certificate over
// the session. What does not depend on the wire (Config, the errors, the
// lease, running a call) is node/carrier's; this package maps QUIC's
// signals (application error codes, TLS alerts) to carrier's errors.
//
// It owns the node's QUIC carrier only; it must not import the gRPC
// carrier, the gateway or anything from the GUI.
package quiccarrier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// ALPN is the application protocol of the node protocol over QUIC.
const ALPN = wire.ALPN

const (
	// registerTimeout bounds waiting for Welcome after dialing.
	registerTimeout = 10 * time.Second
	// KeepAlivePeriod is how long a session goes without a packet from the
	// gateway before QUIC pings it. The lease renewals (every
	// carrier.SilenceLimit/3, 4 s, each answered) are what keeps NAT
	// bindings open and gives the idle timer something to miss when the
	// path dies; the pings stand in only when the answers stop. At 4 s
	// they came due just as the next renewal went out, every period: a
	// ping beside the renewal, or the connection's timer moved to fire
	// within a millisecond, and in a process of thousands of sessions
	// every such move costs a scan of the runtime's timer heap.
	KeepAlivePeriod = carrier.SilenceLimit / 2
	// MaxIdleTimeout is how long QUIC keeps a connection that hears
	// nothing. The smaller of the two ends' values applies, so this is the
	// connection's timeout: together with carrier.SilenceLimit, a gateway
	// that vanished is noticed within 15 s.
	MaxIdleTimeout = 15 * time.Second
	// maxIncomingStreams is how many of the gateway's calls may run at
	// once on the session (a stream each); more wait at the gateway for
	// one to end. quic-go's default of 100 made the 101st call wait even
	// when the calls are cheap. The bound is on goroutines (each call runs
	// on one, a few KB of stack plus what its capability holds); the
	// memory the streams' data can take is bounded apart from it, by the
	// connection's flow-control window.
	maxIncomingStreams = 1024
)

// Run dials, registers and keeps the lease renewed until ctx ends (it then
// returns ctx's error) or the session fails. It calls onUp (if not nil)
// once registered. Errors wrap node/carrier's errors (ErrRevoked,
// ErrCertificateRefused, ErrReplaced, ErrLeaseExpired, ErrGatewayShutdown,
// ErrRegistrationRefused, ErrProtocol), identity's errors when the
// gateway's certificate does not verify, or a network error.
func Run(ctx context.Context, cfg carrier.Config, onUp func(*nodev1.Welcome)) error {
	c, err := Dial(ctx, cfg)
	if err != nil {
		return err
	}
	if onUp != nil {
		onUp(c.Welcome())
	}
	return c.Serve(ctx)
}

// Conn is a registered session.
type Conn struct {
	s    *carrier.Session
	conn *quic.Conn
	str  *quic.Stream

	// writeMu serializes frames written to str.
	writeMu sync.Mutex

	// renewMu allows one certificate renewal at a time.
	renewMu sync.Mutex
	// renewals carries the answer to the outstanding renewal.
	renewals chan *nodev1.Frame
	// done is closed when Serve's reader ends; err is why.
	done chan struct{}
	err  error
}

var _ carrier.Conn = (*Conn)(nil)

// Dial connects to the first address that answers, registers and waits for
// Welcome. A refusal of this device (revoked, bad certificate) is final and
// stops at that address; other failures try the next one.
// Each dial opens a UDP socket of its own (Transport.Dial shares one).
func Dial(ctx context.Context, cfg carrier.Config) (*Conn, error) {
	return carrier.DialEach(ctx, cfg, "QUIC", connect(quic.DialAddr))
}

// openFunc opens the QUIC connection of one dial: quic.DialAddr, or a
// shared Transport's.
type openFunc func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error)

// connect is the dial of one address for carrier.DialEach: open the
// connection with open, then register.
func connect(open openFunc) func(context.Context, carrier.Config, string, *tls.Config) (*Conn, error) {
	return func(ctx context.Context, cfg carrier.Config, addr string, tlsConf *tls.Config) (*Conn, error) {
		tlsConf.NextProtos = []string{ALPN}
		quicConf := &quic.Config{
			HandshakeIdleTimeout: carrier.HandshakeIdleTimeout,
			KeepAlivePeriod:      KeepAlivePeriod,
			MaxIdleTimeout:       MaxIdleTimeout,
			MaxIncomingStreams:   maxIncomingStreams,
		}
		conn, err := open(ctx, addr, tlsConf, quicConf)
		if err != nil {
			return nil, classify(err)
		}
		if cfg.Reached != nil {
			cfg.Reached()
		}
		c, err := register(ctx, cfg, conn)
		if err != nil {
			_ = conn.CloseWithError(wire.CodeNoError, "registration failed")
			return nil, err
		}
		return c, nil
	}
}

// register opens the control stream, sends RegisterNode and reads Welcome.
// With TLS 1.3 a refused client certificate shows here, not at dial.
func register(ctx context.Context, cfg carrier.Config, conn *quic.Conn) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	// Interrupt blocked stream calls when ctx ends.
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening control stream: %w", classify(err))
	}
	deadline, _ := ctx.Deadline()
	_ = str.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = str.SetDeadline(time.Now()) })
	defer stop()
	reg := &nodev1.Frame{Body: &nodev1.Frame_RegisterNode{RegisterNode: cfg.Register}}
	if err := wire.WriteFrame(str, reg); err != nil {
		return nil, fmt.Errorf("registering: %w", classify(err))
	}
	var f nodev1.Frame
	if err := wire.ReadFrame(str, &f); err != nil {
		return nil, fmt.Errorf("waiting for welcome: %w", classifyRead(conn, err))
	}
	if e := f.GetError(); e != nil {
		return nil, fmt.Errorf("registering: %w", carrier.ErrorFrame(e))
	}
	if g := f.GetGoAway(); g != nil {
		// The gateway began to shut down as it welcomed us.
		return nil, fmt.Errorf("registering: %w", carrier.GoAway(g))
	}
	w := f.GetWelcome()
	if w == nil {
		return nil, fmt.Errorf("%w: expected Welcome, got %T", carrier.ErrProtocol, f.Body)
	}
	if !stop() {
		return nil, ctx.Err()
	}
	_ = str.SetDeadline(time.Time{})
	c := &Conn{
		conn:     conn,
		str:      str,
		renewals: make(chan *nodev1.Frame, 1),
		done:     make(chan struct{}),
	}
	c.s = carrier.NewSession(cfg, w, c.send, "remote", conn.RemoteAddr().String())
	return c, nil
}

// Welcome is what the gateway answered the registration with.
func (c *Conn) Welcome() *nodev1.Welcome { return c.s.Welcome() }

// Address is the gateway address the session was dialed at.
func (c *Conn) Address() string { return c.s.Address() }

// Close ends the session (the gateway sees a normal close).
func (c *Conn) Close() error {
	return c.conn.CloseWithError(wire.CodeNoError, "node going away")
}

// Serve keeps the lease renewed (every LeaseTTL/3) until ctx ends, when it
// closes the session and returns ctx's error, or until the session fails.
// The session is closed when Serve returns. Call it once.
func (c *Conn) Serve(ctx context.Context) error {
	leaseCtx, endLease := context.WithCancelCause(ctx)
	defer endLease(nil)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.err = c.readLoop()
		endLease(c.err)
		close(c.done)
	}()
	callsCtx, stopCalls := context.WithCancelCause(ctx)
	callsDone := make(chan struct{})
	go func() {
		defer close(callsDone)
		c.acceptCalls(callsCtx)
	}()
	defer func() {
		c.s.EndCalls(ctx)
		stopCalls(carrier.ErrSessionEnded)
		<-callsDone // no call starts after this
		c.s.WaitCalls()
	}()
	err := c.s.KeepLease(leaseCtx)
	_, goAway := carrier.ReconnectWithin(err)
	switch {
	case ctx.Err() != nil:
		_ = c.conn.CloseWithError(wire.CodeNoError, "node going away")
		err = ctx.Err()
	case goAway:
		// Closing at once lets the gateway stop without waiting for us.
		_ = c.conn.CloseWithError(wire.CodeNoError, "gateway going away")
	default:
		// Tell the gateway why, if it is still listening.
		_ = c.conn.CloseWithError(wire.CodeProtocol, "session failed")
	}
	<-readerDone
	return err
}

// readLoop reads frames until the stream fails, and returns why. Every
// frame is a sign of life for the lease.
func (c *Conn) readLoop() error {
	for {
		var f nodev1.Frame
		if err := wire.ReadFrame(c.str, &f); err != nil {
			return fmt.Errorf("reading control stream: %w", classifyRead(c.conn, err))
		}
		c.s.Alive()
		switch body := f.Body.(type) {
		case *nodev1.Frame_LeaseGranted:
		case *nodev1.Frame_CertificateRenewed:
			c.deliverRenewal(&f)
		case *nodev1.Frame_Error:
			// An Error answers a renewal if one is outstanding; otherwise
			// it ends the session.
			if c.deliverRenewal(&f) {
				continue
			}
			return carrier.ErrorFrame(body.Error)
		case *nodev1.Frame_GoAway:
			return carrier.GoAway(body.GoAway)
		default:
			return fmt.Errorf("%w: unexpected frame %T", carrier.ErrProtocol, f.Body)
		}
	}
}

// deliverRenewal hands f to the waiting RenewCertificate, if any.
func (c *Conn) deliverRenewal(f *nodev1.Frame) bool {
	select {
	case c.renewals <- f:
		return true
	default:
		return false
	}
}

// send writes f on the control stream.
func (c *Conn) send(f *nodev1.Frame) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.str.SetWriteDeadline(time.Now().Add(c.s.TTL()))
	return classify(wire.WriteFrame(c.str, f))
}

// Probe checks that the gateway still answers on the session (see
// carrier.Session.Probe).
func (c *Conn) Probe(ctx context.Context) error { return c.s.Probe(ctx) }

// SendCapabilities replaces the node's manifest at the gateway.
func (c *Conn) SendCapabilities(caps []*nodev1.Capability) error { return c.s.SendCapabilities(caps) }

// SendEvent reports an event to the gateway.
func (c *Conn) SendEvent(ev *nodev1.NodeEvent) error { return c.s.SendEvent(ev) }

// RenewCertificate sends a CSR (DER, signed by the device key) over the
// session and returns the new certificate (DER), which the caller stores
// and serves from Config.ClientCertificate. It needs Serve running.
func (c *Conn) RenewCertificate(ctx context.Context, csrDER []byte) ([]byte, error) {
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	// renewals has room for one answer; drain a stale one.
	select {
	case <-c.renewals:
	default:
	}
	f := &nodev1.Frame{Body: &nodev1.Frame_RenewCertificate{RenewCertificate: &nodev1.RenewCertificate{Csr: csrDER}}}
	if err := c.send(f); err != nil {
		return nil, fmt.Errorf("renewing certificate: %w", err)
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("renewing certificate: %w", ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("renewing certificate: %w", c.err)
	case ans := <-c.renewals:
		if e := ans.GetError(); e != nil {
			return nil, fmt.Errorf("renewing certificate: %w", carrier.ErrorFrame(e))
		}
		der := ans.GetCertificateRenewed().GetCertificate()
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("renewing certificate: %w: %w", carrier.ErrProtocol, err)
		}
		return der, nil
	}
}
