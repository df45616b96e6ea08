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
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
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
}

// Server accepts node connections over QUIC.
type Server struct {
	tlsConf  *tls.Config
	quicConf *quic.Config
	cfg      Config
	log      *slog.Logger
	reg      *carrier.Registry
	rt       carrier.Runtime

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
	s := &Server{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, rt: cfg.Registry.Runtime()}
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
	s.tlsConf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		var remote net.Addr
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr()
		}
		c := base.Clone()
		c.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			return s.verifyPeer(remote, rawCerts)
		}
		return c, nil
	}
	// Never used while crypto/tls honours GetConfigForClient; here so that
	// no configuration of this server accepts an unchecked certificate.
	s.tlsConf.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		return s.verifyPeer(nil, rawCerts)
	}
	s.quicConf = &quic.Config{
		MaxIdleTimeout:        max(2*cfg.LeaseTTL, 30*time.Second),
		KeepAlivePeriod:       DefaultKeepAlivePeriod,
		MaxIncomingStreams:    1, // the control stream
		MaxIncomingUniStreams: -1,
		Allow0RTT:             false,
	}
	return s, nil
}

// verifyPeer runs Authenticate during the handshake of a client at remote;
// its error carries the TLS alert the client will see.
func (s *Server) verifyPeer(remote net.Addr, rawCerts [][]byte) error {
	_, err := s.reg.Authenticate(rawCerts)
	if err == nil {
		return nil
	}
	s.log.Info("node handshake refused", "remote", remote, "err", err)
	s.reg.Refuse(remote, err)
	return fmt.Errorf("%w: %w", alertFor(err), err)
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

	tr := &quic.Transport{Conn: pc}
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
		wg.Go(func() { s.serveConn(connCtx, conn) })
	}
	_ = ln.Close()
	s.reg.Shutdown(wire.TransportQUIC)
	cancel()
	wg.Wait()
	_ = tr.Close()
	return serveErr
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
	default:
		return CodeInternal
	}
}
