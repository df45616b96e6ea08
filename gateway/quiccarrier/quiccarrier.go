// Package quiccarrier is the gateway's end of the node protocol over QUIC: it
// accepts mutually authenticated connections from paired nodes, runs each
// node's control stream (registration, lease renewals, certificate renewal)
// and keeps its sessions in the gateway's carrier.Registry, which tells the
// node runtime when nodes come and go.
//
// The device ID always comes from the verified client certificate (through
// the Registry's Authenticate), never from frames. Presence is a lease: a
// node whose connection closes is gone at once, one that goes silent is gone
// when its lease lapses, and a newer session of the same device, on either
// carrier, replaces the first. A session the gateway ends is closed with the
// QUIC application error code of its end, which node/quiccarrier maps back
// to its errors:
//
//	CodeRevoked       the device was revoked or removed (carrier.EndRevoked;
//	                  the reason is the close message), or its registration
//	                  was refused as revoked
//	CodeReplaced      "replaced by a newer session"
//	CodeLeaseExpired  "lease expired"
//	CodeShutdown      "gateway shutting down"
//	CodeProtocol      the node broke the protocol, or closed its control stream
//	CodeRefused       "registration refused"
//	CodeBusy          the store failed while checking or registering the
//	                  node: an Error frame (CODE_BUSY) says when to retry,
//	                  and the gateway waits for the node to close first
//
// Before any of that, Config.Limits bound the handshakes in progress (the
// memory the gateway spends on clients it does not know yet): a cap, a
// share per source that proved its address, and a Retry, which makes a
// client prove its address first, once many are in progress.
//
// It owns the QUIC wire handling only; it must not import the gateway's
// store, the gRPC carrier, the node, or anything from the GUI.
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
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/connlimit"
	"github.com/palyra/palyra-go/internal/wire"
)

// ALPN is the application protocol nodes and the gateway negotiate.
const ALPN = wire.ALPN

const (
	// DefaultKeepAlivePeriod is how often QUIC keepalives are sent on an
	// otherwise idle connection (at most half the idle timeout).
	DefaultKeepAlivePeriod = 10 * time.Second
	// renewCertificateTimeout bounds one Runtime.RenewCertificate call.
	renewCertificateTimeout = 30 * time.Second
	// DefaultHandshakeTimeout is quic-go's handshake idle timeout as the
	// gateway sets it: a handshake is abandoned after this long without a
	// packet from the client, or after twice this long in all, and the
	// memory it held (about 48 KB in quic-go) is given back. A node's
	// handshake takes a few round trips.
	DefaultHandshakeTimeout = 5 * time.Second
)

// QUIC application error codes a connection is closed with. The node maps
// them back to errors (node/quiccarrier).
const (
	CodeNoError      quic.ApplicationErrorCode = wire.CodeNoError
	CodeShutdown     quic.ApplicationErrorCode = wire.CodeShutdown
	CodeRevoked      quic.ApplicationErrorCode = wire.CodeRevoked
	CodeReplaced     quic.ApplicationErrorCode = wire.CodeReplaced
	CodeLeaseExpired quic.ApplicationErrorCode = wire.CodeLeaseExpired
	CodeProtocol     quic.ApplicationErrorCode = wire.CodeProtocol
	CodeRefused      quic.ApplicationErrorCode = wire.CodeRefused
	CodeInternal     quic.ApplicationErrorCode = wire.CodeInternal
	CodeBusy         quic.ApplicationErrorCode = wire.CodeBusy
)

// TLS alerts the handshake is refused with when Authenticate fails, so that
// a node can tell a revoked certificate from other refusals. (crypto/tls
// would send bad_certificate for every VerifyPeerCertificate error; under
// QUIC it uses the tls.AlertError the error wraps, and quic-go sends it as
// CRYPTO_ERROR 0x100+alert.)
const (
	AlertBadCertificate     tls.AlertError = 42
	AlertCertificateRevoked tls.AlertError = 44
	AlertCertificateExpired tls.AlertError = 45
	AlertUnknownCA          tls.AlertError = 48
)

// Config configures a Server.
type Config struct {
	// TLSCertificate returns the gateway's server certificate. It is called
	// for every handshake, so a rotated certificate takes effect at once.
	// Required.
	TLSCertificate func() (*tls.Certificate, error)
	// Common holds the Registry (whose Authenticate also runs from
	// tls.Config.VerifyPeerCertificate, so a refused device fails the
	// handshake), the lease (how long a node counts as present without a
	// frame on its control stream) and the name sent in Welcome.
	carrier.Common
	// Limits bound the handshakes in progress.
	Limits Limits
	// Peers, if set, serves the other gateways of the database on the
	// same port, under their own ALPN.
	Peers *Peers
}

// Peers is the gateway-to-gateway protocol a Server serves beside the node
// protocol: a client that offers ALPN gets Peers' own TLS certificate
// and verification, and its connection is handed to Serve.
type Peers struct {
	// ALPN names the protocol; a client offering it is a peer.
	ALPN string
	// TLSCertificate is the gateway's peer certificate; Verify checks the
	// peer's (it must refuse anything but another gateway's).
	TLSCertificate func() (*tls.Certificate, error)
	Verify         func(rawCerts [][]byte) error
	// Serve runs one peer connection until it or ctx ends.
	Serve func(ctx context.Context, conn *quic.Conn)
	// MaxStreams caps the calls in flight on one peer connection.
	MaxStreams int64
}

// Limits bound the handshakes in progress: before a client is known, its
// handshake costs the gateway memory, and a flood of Initial packets (one
// datagram each, from addresses that may be spoofed) could otherwise hold
// as many as it sends. The zero value sets no limits.
type Limits struct {
	// MaxHandshakes caps the handshakes in progress; a client over it is
	// refused at its first packet with CONNECTION_REFUSED, which costs no
	// state. 0: no cap.
	MaxHandshakes int
	// MaxHandshakesPerSource caps the handshakes in progress from one
	// source (connlimit.Source) that proved its address with a Retry.
	// Addresses not proved may be spoofed (and a spoofer could then use up
	// a node's share), so those count towards MaxHandshakes only. 0: no
	// cap.
	MaxHandshakesPerSource int
	// RetryThreshold: from this many handshakes in progress on, a client
	// must first prove its address with a Retry (one more round trip, for
	// which the gateway keeps no state) before its handshake counts. With
	// it below MaxHandshakes, a flood from spoofed addresses holds at most
	// this many, and only clients that receive what the gateway sends can
	// take the rest. 0: never.
	RetryThreshold int
	// HandshakeTimeout is quic-go's handshake idle timeout; default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Refused and Retried, if set, hear each refusal (and which cap
	// refused) and each Retry asked for; they are for metrics. Both count
	// Initial packets, and a client's first flight may take two (a
	// ClientHello with a post-quantum key share does).
	Refused func(connlimit.Reason)
	Retried func()
}

// Server accepts node connections over QUIC.
type Server struct {
	tlsConf  *tls.Config
	quicConf *quic.Config
	cfg      Config
	log      *slog.Logger
	reg      *carrier.Registry
	rt       carrier.Runtime
	// handshakes counts the handshakes in progress (Limits).
	handshakes *connlimit.Limiter
	// leases ends the sessions whose node went silent.
	leases *carrier.Leases

	mu sync.Mutex
	// serving is set once Serve is called: a Server serves once.
	serving bool
}

// NewServer checks cfg and returns a Server; Serve runs it.
func NewServer(cfg Config) (*Server, error) {
	if cfg.TLSCertificate == nil {
		return nil, errors.New("quiccarrier: Config.TLSCertificate is required")
	}
	if err := cfg.Check("quiccarrier"); err != nil {
		return nil, err
	}
	lim := cfg.Limits
	if lim.RetryThreshold < 0 {
		return nil, fmt.Errorf("quiccarrier: Limits.RetryThreshold must not be negative (%d)", lim.RetryThreshold)
	}
	if lim.HandshakeTimeout <= 0 {
		lim.HandshakeTimeout = DefaultHandshakeTimeout
	}
	handshakes, err := connlimit.New(connlimit.Config{
		What:         "QUIC handshakes in progress",
		Max:          lim.MaxHandshakes,
		MaxPerSource: lim.MaxHandshakesPerSource,
		Refused:      lim.Refused,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("quiccarrier: %w", err)
	}
	cfg.Limits = lim
	s := &Server{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, rt: cfg.Registry.Runtime(), handshakes: handshakes, leases: carrier.NewLeases(cfg.LeaseTTL)}
	s.tlsConf = &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		ClientAuth: tls.RequireAnyClientCert,
		// VerifyPeerCertificate is not called on resumed sessions, so
		// resumption would let a revoked device back in.
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cfg.TLSCertificate()
		},
	}
	// Each handshake gets its own copy, whose check knows the client's
	// address (quic-go gives it in the ClientHelloInfo).
	base := s.tlsConf.Clone()
	peerConf := cfg.Peers.tlsConfig()
	s.tlsConf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		var remote net.Addr
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr()
		}
		if peerConf != nil && slices.Contains(hello.SupportedProtos, cfg.Peers.ALPN) {
			return peerConf, nil
		}
		// quic-go hands the TLS handshake the connection's context.
		hs := handshakeOf(hello.Context())
		c := base.Clone()
		c.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			id, err := s.verifyPeer(remote, rawCerts)
			if err == nil && hs != nil {
				hs.device = id
			}
			return err
		}
		return c, nil
	}
	// Never used while crypto/tls honours GetConfigForClient; here so that
	// no configuration of this server accepts an unchecked certificate.
	s.tlsConf.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		_, err := s.verifyPeer(nil, rawCerts)
		return err
	}
	s.quicConf = &quic.Config{
		HandshakeIdleTimeout:  lim.HandshakeTimeout,
		MaxIdleTimeout:        max(2*cfg.LeaseTTL, 30*time.Second),
		KeepAlivePeriod:       DefaultKeepAlivePeriod,
		MaxIncomingStreams:    1, // the control stream
		MaxIncomingUniStreams: -1,
		Allow0RTT:             false,
	}
	if cfg.Peers != nil {
		// quic-go fixes a connection's stream limit at its first packet,
		// before the ClientHello says which protocol it is, so node
		// connections get the peers' limit too; a node that opens a second
		// stream is closed for it (refuseMoreStreams), and the connection's
		// flow-control window bounds what its streams can make the gateway
		// buffer whatever their number.
		s.quicConf.MaxIncomingStreams = max(cfg.Peers.MaxStreams, 1)
	}
	return s, nil
}

// tlsConfig is the TLS configuration of peer connections, or nil.
func (p *Peers) tlsConfig() *tls.Config {
	if p == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{p.ALPN},
		ClientAuth: tls.RequireAnyClientCert,
		// As for nodes: a resumed session would skip Verify.
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return p.TLSCertificate()
		},
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if err := p.Verify(rawCerts); err != nil {
				return fmt.Errorf("%w: %w", AlertBadCertificate, err)
			}
			return nil
		},
	}
}

// verifyPeer runs Authenticate during the handshake of a client at remote;
// its error carries the TLS alert the client will see. A chain that is
// good but could not be checked against the store (carrier.ErrBusy) is let
// through the handshake: a TLS alert would tell the node its certificate
// is bad. Its session is refused after it, on the control stream, with
// the wait (runSession), unless the store answers by then. It returns the
// device whose chain it let through.
func (s *Server) verifyPeer(remote net.Addr, rawCerts [][]byte) (identity.DeviceID, error) {
	id, err := s.reg.Authenticate(rawCerts)
	if err == nil {
		return id, nil
	}
	if errors.Is(err, carrier.ErrBusy) {
		s.log.Warn("could not check a node's certificate against the store; it will be asked to retry", "remote", remote, "err", err)
		return id, nil
	}
	s.log.Info("node handshake refused", "remote", remote, "err", err)
	s.reg.Refuse(remote, err)
	return identity.DeviceID{}, fmt.Errorf("%w: %w", alertFor(err), err)
}

// alertFor maps an Authenticate error to a TLS alert.
func alertFor(err error) tls.AlertError {
	switch {
	case errors.Is(err, identity.ErrRevoked):
		return AlertCertificateRevoked
	case errors.Is(err, identity.ErrExpired):
		return AlertCertificateExpired
	case errors.Is(err, identity.ErrUntrusted):
		return AlertUnknownCA
	default:
		return AlertBadCertificate
	}
}

// Serve accepts node connections on pc until ctx ends, then closes every
// QUIC session (CodeShutdown), waits for their goroutines and returns nil.
// It does not close pc. A Server serves once.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("quiccarrier: Serve called twice")
	}
	s.serving = true
	s.mu.Unlock()

	tr := &quic.Transport{Conn: pc, ConnContext: s.startHandshake}
	if s.cfg.Limits.RetryThreshold > 0 {
		tr.VerifySourceAddress = s.askRetry
	}
	ln, err := tr.Listen(s.tlsConf, s.quicConf)
	if err != nil {
		_ = tr.Close()
		return fmt.Errorf("listening for nodes: %w", err)
	}
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				serveErr = fmt.Errorf("accepting node connections: %w", err)
			}
			break
		}
		handshakeDone(conn)
		if s.cfg.Peers != nil && conn.ConnectionState().TLS.NegotiatedProtocol == s.cfg.Peers.ALPN {
			wg.Go(func() { s.cfg.Peers.Serve(connCtx, conn) })
			continue
		}
		wg.Go(func() { s.serveConn(connCtx, conn) })
	}
	_ = ln.Close()
	s.reg.Shutdown(wire.TransportQUIC)
	cancel()
	wg.Wait()
	_ = tr.Close()
	return serveErr
}

// HandshakesInProgress is how many handshakes are in progress now.
func (s *Server) HandshakesInProgress() int { return s.handshakes.Held() }

// handshakeKey is the context key of a connection's handshake.
type handshakeKey struct{}

// handshake is what a connection's handshake leaves for its session.
type handshake struct {
	slot *connlimit.Slot
	// device is the device whose certificate chain the handshake
	// verified (verifyPeer), zero if none was. Written during the
	// handshake and read after it completes (serveConn), so that the
	// session need not verify the chain again: Attach checks the device
	// against the store once more, under the device's lock.
	device identity.DeviceID
}

// startHandshake is quic.Transport's ConnContext, called at a client's
// first Initial that has got past the Retry (askRetry): it takes the
// handshake's slot, refusing the client when there is none. The slot is
// given back when the handshake completes (handshakeDone, at accept) or
// fails (ctx ends with the connection).
func (s *Server) startHandshake(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	var src netip.Prefix
	if info.AddrVerified {
		src = connlimit.Source(info.RemoteAddr)
	}
	slot, err := s.handshakes.Acquire(src)
	if err != nil {
		return ctx, err
	}
	context.AfterFunc(ctx, slot.Release)
	return context.WithValue(ctx, handshakeKey{}, &handshake{slot: slot}), nil
}

// handshakeOf is the handshake of the connection whose context is ctx,
// or nil.
func handshakeOf(ctx context.Context) *handshake {
	hs, _ := ctx.Value(handshakeKey{}).(*handshake)
	return hs
}

// handshakeDone gives back the slot of conn, whose handshake completed.
func handshakeDone(conn *quic.Conn) {
	if hs := handshakeOf(conn.Context()); hs != nil {
		hs.slot.Release()
	}
}

// askRetry is quic.Transport's VerifySourceAddress: true (send a Retry)
// while many handshakes are in progress.
func (s *Server) askRetry(net.Addr) bool {
	if s.handshakes.Held() < s.cfg.Limits.RetryThreshold {
		return false
	}
	if s.cfg.Limits.Retried != nil {
		s.cfg.Limits.Retried()
	}
	return true
}

// codeFor is the application error code a session's end closes its
// connection with.
func codeFor(k carrier.EndKind) quic.ApplicationErrorCode {
	switch k {
	case carrier.EndRevoked:
		return CodeRevoked
	case carrier.EndReplaced:
		return CodeReplaced
	case carrier.EndLeaseExpired:
		return CodeLeaseExpired
	case carrier.EndShutdown:
		return CodeShutdown
	case carrier.EndProtocol:
		return CodeProtocol
	case carrier.EndRefused:
		return CodeRefused
	case carrier.EndBusy:
		return CodeBusy
	default:
		return CodeInternal
	}
}
