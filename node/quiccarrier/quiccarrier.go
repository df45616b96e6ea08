// Package session is the node's end of the node protocol over QUIC: it
// dials the gateway with the device certificate, verifies the gateway
// against the pinned CA, registers, keeps the lease renewed and can renew
// the device certificate over the session. Errors say why a session ended
// (revoked, replaced, refused, network), so the caller can decide whether
// to reconnect; Backoff paces the reconnects.
//
// It owns the node's QUIC carrier only; it must not import the gateway or
// anything from the GUI.
package quiccarrier

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
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// ALPN is the application protocol of the node protocol over QUIC.
const ALPN = wire.ALPN

const (
	// registerTimeout bounds waiting for Welcome after dialing.
	registerTimeout = 10 * time.Second
	// keepAlivePeriod: QUIC keepalives on an idle connection.
	keepAlivePeriod = 10 * time.Second
	// defaultLeaseTTL is assumed when Welcome names none.
	defaultLeaseTTL = 30 * time.Second
)

// Errors Run, Dial and Serve return, to be tested with errors.Is. Network
// failures are returned wrapped as they are.
var (
	// ErrRevoked: the gateway refused this device as revoked, at the
	// handshake (TLS alert certificate_revoked) or by closing the session.
	// It is identity.ErrRevoked, so either name matches.
	ErrRevoked = identity.ErrRevoked
	// ErrCertificateRefused: the gateway refused the device certificate for
	// another reason (unknown CA, expired, none presented).
	ErrCertificateRefused = errors.New("gateway refused the device certificate")
	// ErrReplaced: another session of this device took over.
	ErrReplaced = errors.New("session replaced by a newer session of this device")
	// ErrLeaseExpired: the lease lapsed (the gateway closed the session, or
	// stopped granting renewals).
	ErrLeaseExpired = errors.New("lease expired")
	// ErrGatewayShutdown: the gateway shut down.
	ErrGatewayShutdown = errors.New("gateway shut down")
	// ErrRegistrationRefused: the gateway refused the registration.
	ErrRegistrationRefused = errors.New("gateway refused the registration")
	// ErrProtocol: one side broke the node protocol.
	ErrProtocol = errors.New("node protocol error")
	// ErrSessionEnded is the cause of a running call's context when its
	// session ends under it (not when the gateway cancels the call): the
	// gateway will deliver it again on the next session, so the node may
	// let it finish and keep its result.
	ErrSessionEnded = errors.New("the session to the gateway ended")
)

// Config configures a session.
type Config struct {
	// Addresses of the gateway, HOST:PORT, tried in order. Required.
	Addresses []string
	// ClientCertificate returns the device certificate and key. It is called
	// for every handshake (tls.Config.GetClientCertificate), so a renewed
	// certificate is used from the next connection on. Required.
	ClientCertificate func() (*tls.Certificate, error)
	// CACertificate is the pinned gateway CA; the gateway's certificate is
	// verified against it with identity.VerifyServerCertificate. Required.
	CACertificate *x509.Certificate
	// Register is sent as the first frame. Required.
	Register *nodev1.RegisterNode
	// Now is the clock for certificate checks; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Invoke runs the calls the gateway sends (each on its own goroutine)
	// and returns their results; ctx ends at the call's deadline or when
	// the gateway cancels it. nil refuses every call.
	Invoke InvokeHandler
}

// InvokeHandler runs one call; progress sends a Progress frame.
type InvokeHandler func(ctx context.Context, inv *nodev1.Invoke, progress func(message string)) *nodev1.Result

// Validate checks the required fields and fills in defaults; Dial calls it
// (and so does the gRPC carrier, which shares this Config).
func (cfg *Config) Validate() error {
	switch {
	case len(cfg.Addresses) == 0:
		return errors.New("session: Config.Addresses is empty")
	case cfg.ClientCertificate == nil:
		return errors.New("session: Config.ClientCertificate is required")
	case cfg.CACertificate == nil:
		return errors.New("session: Config.CACertificate is required")
	case cfg.Register == nil:
		return errors.New("session: Config.Register is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run dials, registers and keeps the lease renewed until ctx ends (it then
// returns ctx's error) or the session fails. It calls onUp (if not nil)
// once registered. Errors wrap ErrRevoked, ErrCertificateRefused,
// ErrReplaced, ErrLeaseExpired, ErrGatewayShutdown, ErrRegistrationRefused,
// ErrProtocol, identity's errors when the gateway's certificate does not
// verify, or a network error.
func Run(ctx context.Context, cfg Config, onUp func(*nodev1.Welcome)) error {
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
	cfg     Config
	log     *slog.Logger
	conn    *quic.Conn
	str     *quic.Stream
	welcome *nodev1.Welcome
	ttl     time.Duration

	// writeMu serializes frames written to str.
	writeMu sync.Mutex

	// renewMu allows one certificate renewal at a time.
	renewMu sync.Mutex
	// renewals carries the answer to the outstanding renewal.
	renewals chan *nodev1.Frame
	// done is closed when Serve's reader ends; err is why.
	done chan struct{}
	err  error
	// skew is the gateway's clock minus ours, from Welcome, for reading
	// call deadlines.
	skew time.Duration
}

// Dial connects to the first address that answers, registers and waits for
// Welcome. A refusal of this device (revoked, bad certificate) is final and
// stops at that address; other failures try the next one.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	return DialEach(ctx, cfg, "QUIC", dial)
}

// DialEach validates cfg and calls dial for its addresses in order until
// one connects. The gateway's verdict on this device (see IsVerdict) stops
// at the address that gave it; other failures try the next address, and
// are all returned if none connects. carrier names the transport in
// messages.
func DialEach[C any](ctx context.Context, cfg Config, carrier string, dial func(context.Context, Config, string) (C, error)) (C, error) {
	var none C
	if err := cfg.Validate(); err != nil {
		return none, err
	}
	var errs []error
	for _, addr := range cfg.Addresses {
		c, err := dial(ctx, cfg, addr)
		if err == nil {
			return c, nil
		}
		err = fmt.Errorf("dialing gateway over %s at %s: %w", carrier, addr, err)
		if ctx.Err() != nil || IsVerdict(err) {
			return none, err
		}
		cfg.Logger.Info("gateway address failed", "address", addr, "transport", carrier, "err", err)
		errs = append(errs, err)
	}
	return none, errors.Join(errs...)
}

// IsVerdict reports whether err is the gateway's verdict on this device
// (revoked, certificate or registration refused), which another address or
// carrier of the same gateway would repeat.
func IsVerdict(err error) bool {
	return errors.Is(err, ErrRevoked) || errors.Is(err, ErrCertificateRefused) ||
		errors.Is(err, ErrRegistrationRefused)
}

func dial(ctx context.Context, cfg Config, addr string) (*Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		// Addresses may be IP literals the certificate names as IP SANs,
		// and trust is the pinned CA, not the system roots: verification
		// is VerifyPeerCertificate's, with identity's rules.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			return identity.VerifyServerCertificate(cfg.CACertificate, rawCerts, host, cfg.Now())
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cfg.ClientCertificate()
		},
	}
	if _, err := netip.ParseAddr(host); err != nil {
		tlsConf.ServerName = host
	}
	quicConf := &quic.Config{
		KeepAlivePeriod: keepAlivePeriod,
	}
	conn, err := quic.DialAddr(ctx, addr, tlsConf, quicConf)
	if err != nil {
		return nil, classify(err)
	}
	c, err := register(ctx, cfg, conn)
	if err != nil {
		_ = conn.CloseWithError(wire.CodeNoError, "registration failed")
		return nil, err
	}
	return c, nil
}

// register opens the control stream, sends RegisterNode and reads Welcome.
// With TLS 1.3 a refused client certificate shows here, not at dial.
func register(ctx context.Context, cfg Config, conn *quic.Conn) (*Conn, error) {
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
		return nil, fmt.Errorf("registering: %w", errorFrameErr(e))
	}
	w := f.GetWelcome()
	if w == nil {
		return nil, fmt.Errorf("%w: expected Welcome, got %T", ErrProtocol, f.Body)
	}
	if !stop() {
		return nil, ctx.Err()
	}
	_ = str.SetDeadline(time.Time{})
	ttl := time.Duration(w.GetLeaseTtlMs()) * time.Millisecond
	if ttl <= 0 {
		ttl = defaultLeaseTTL
	}
	log := cfg.Logger.With("gateway", w.GetGatewayName(), "remote", conn.RemoteAddr().String())
	log.Info("registered with gateway", "lease_ttl", ttl)
	return &Conn{
		cfg:      cfg,
		log:      log,
		conn:     conn,
		str:      str,
		welcome:  w,
		ttl:      ttl,
		renewals: make(chan *nodev1.Frame, 1),
		done:     make(chan struct{}),
		skew:     time.UnixMilli(w.GetServerTimeUnixMs()).Sub(cfg.Now()),
	}, nil
}

// Welcome is what the gateway answered the registration with.
func (c *Conn) Welcome() *nodev1.Welcome { return c.welcome }

// Close ends the session (the gateway sees a normal close).
func (c *Conn) Close() error {
	return c.conn.CloseWithError(wire.CodeNoError, "node going away")
}

// Serve keeps the lease renewed (every LeaseTTL/3) until ctx ends, when it
// closes the session and returns ctx's error, or until the session fails.
// The session is closed when Serve returns. Call it once.
func (c *Conn) Serve(ctx context.Context) error {
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.readLoop()
	}()
	callsCtx, stopCalls := context.WithCancelCause(ctx)
	callsDone := make(chan struct{})
	go func() {
		defer close(callsDone)
		c.acceptCalls(callsCtx)
	}()
	defer func() {
		stopCalls(ErrSessionEnded)
		<-callsDone
	}()
	err := c.renewLoop(ctx)
	if err == nil {
		err = c.err // set by readLoop before done closed
	}
	if ctx.Err() != nil {
		_ = c.conn.CloseWithError(wire.CodeNoError, "node going away")
		err = ctx.Err()
	} else {
		// Tell the gateway why, if it is still listening.
		_ = c.conn.CloseWithError(wire.CodeProtocol, "session failed")
	}
	<-readerDone
	return err
}

// renewLoop sends a renewal every ttl/3; it returns nil when the reader
// ends (see c.err), ctx's error, or a write error.
func (c *Conn) renewLoop(ctx context.Context) error {
	ticker := time.NewTicker(c.ttl / 3)
	defer ticker.Stop()
	// The gateway must grant within a lease: the reader resets granted.
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return nil
		case <-ticker.C:
		}
		seq++
		f := &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: seq}}}
		if err := c.write(f); err != nil {
			select {
			case <-c.done:
				return nil // the reader knows better why
			default:
				return fmt.Errorf("renewing lease: %w", classify(err))
			}
		}
	}
}

// readLoop reads frames until the stream fails, setting c.err. The read
// deadline enforces the lease from this side: the gateway answers every
// renewal, so a full lease without a frame means it is gone.
func (c *Conn) readLoop() {
	defer close(c.done)
	for {
		_ = c.str.SetReadDeadline(time.Now().Add(c.ttl))
		var f nodev1.Frame
		if err := wire.ReadFrame(c.str, &f); err != nil {
			if isTimeout(err) {
				c.err = fmt.Errorf("%w: no answer from the gateway for %v", ErrLeaseExpired, c.ttl)
				return
			}
			c.err = fmt.Errorf("reading control stream: %w", classifyRead(c.conn, err))
			return
		}
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
			c.err = errorFrameErr(body.Error)
			return
		default:
			c.err = fmt.Errorf("%w: unexpected frame %T", ErrProtocol, f.Body)
			return
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

func (c *Conn) write(f *nodev1.Frame) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.str.SetWriteDeadline(time.Now().Add(c.ttl))
	return wire.WriteFrame(c.str, f)
}

// SendCapabilities replaces the node's manifest at the gateway.
func (c *Conn) SendCapabilities(caps []*nodev1.Capability) error {
	f := &nodev1.Frame{Body: &nodev1.Frame_CapabilitiesChanged{CapabilitiesChanged: &nodev1.CapabilitiesChanged{Capabilities: caps}}}
	if err := c.write(f); err != nil {
		return fmt.Errorf("sending capabilities: %w", classify(err))
	}
	return nil
}

// SendEvent reports an event to the gateway.
func (c *Conn) SendEvent(ev *nodev1.NodeEvent) error {
	if err := c.write(&nodev1.Frame{Body: &nodev1.Frame_Event{Event: ev}}); err != nil {
		return fmt.Errorf("sending event: %w", classify(err))
	}
	return nil
}

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
	if err := c.write(f); err != nil {
		return nil, fmt.Errorf("renewing certificate: %w", classify(err))
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("renewing certificate: %w", ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("renewing certificate: %w", c.err)
	case ans := <-c.renewals:
		if e := ans.GetError(); e != nil {
			return nil, fmt.Errorf("renewing certificate: %w", errorFrameErr(e))
		}
		der := ans.GetCertificateRenewed().GetCertificate()
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("renewing certificate: %w: %w", ErrProtocol, err)
		}
		return der, nil
	}
}
