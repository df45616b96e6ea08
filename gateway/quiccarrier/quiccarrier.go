// Package quiccarrier is the gateway's end of the node protocol over QUIC: it
// accepts mutually authenticated connections from paired nodes, runs each
// node's control stream (registration, lease renewals, certificate renewal)
// and tells a Registry when nodes come and go.
//
// The device ID always comes from the verified client certificate (through
// Config.Authenticate), never from frames. Presence is a lease: a node whose
// connection closes is gone at once, one that goes silent is gone when its
// lease lapses, and a second session of the same device replaces the first.
//
// It owns the QUIC carrier only; it must not import the gateway's store, the
// node, or anything from the GUI.
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

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// ALPN is the application protocol nodes and the gateway negotiate.
const ALPN = wire.ALPN

// Defaults for Config fields left zero.
const (
	DefaultLeaseTTL = 30 * time.Second
	// DefaultKeepAlivePeriod is how often QUIC keepalives are sent on an
	// otherwise idle connection (at most half the idle timeout).
	DefaultKeepAlivePeriod = 10 * time.Second
	// renewCertificateTimeout bounds one Registry.RenewCertificate call.
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
	// Authenticate verifies a client's certificates (leaf first) and returns
	// the device ID; it must refuse revoked devices with an error wrapping
	// identity.ErrRevoked. It is called from tls.Config.VerifyPeerCertificate,
	// so a refused device fails the handshake, and again when the node
	// registers. Required.
	Authenticate func(rawCerts [][]byte) (identity.DeviceID, error)
	// Registry is told about sessions coming and going. Required.
	Registry Registry
	// LeaseTTL is how long a node counts as present without a frame on its
	// control stream; nodes renew every LeaseTTL/3. Zero means
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Now is the clock for timestamps the Registry and nodes see; nil means
	// time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// GatewayName is sent to nodes in Welcome.
	GatewayName string
}

// Registry is what the gateway's node runtime implements to learn about
// sessions. Calls that change presence (NodeRegistered, NodeGone) are
// serialized, so for one device they arrive in order; they must not call
// back into the Server except Disconnect and Sessions.
type Registry interface {
	// NodeRegistered is called after RegisterNode; returning an error
	// refuses the node (Error frame, close). An error wrapping
	// identity.ErrRevoked closes with CodeRevoked, others with CodeRefused.
	NodeRegistered(ctx context.Context, s SessionInfo) error
	// NodeRenewed is called for every lease renewal.
	NodeRenewed(id identity.DeviceID, at time.Time)
	// NodeGone is called once for every registered session that ends,
	// unless a newer session of the same device replaced it.
	NodeGone(id identity.DeviceID, at time.Time, reason string)
	// NodeReady is called once the node has been welcomed: from now on
	// Invoke reaches it.
	NodeReady(s SessionInfo)
	// RenewCertificate handles a CSR sent over the authenticated session of
	// device id and returns the new certificate (DER). It must issue only
	// for the same device's key.
	RenewCertificate(ctx context.Context, id identity.DeviceID, csrDER []byte) (certDER []byte, err error)
	// CapabilitiesChanged is called when the node sends a new manifest.
	CapabilitiesChanged(id identity.DeviceID, caps []*nodev1.Capability)
	// NodeEvent is called for every event the node reports.
	NodeEvent(id identity.DeviceID, ev *nodev1.NodeEvent)
}

// SessionInfo describes a registered node session.
type SessionInfo struct {
	DeviceID                identity.DeviceID
	Name, Platform, Version string
	RemoteAddr              string
	ConnectedAt             time.Time
	CertNotAfter            time.Time
	// Capabilities is the manifest the node registered with.
	Capabilities []*nodev1.Capability
	Transport    string // "quic" or "grpc"
}

// Server accepts node connections over QUIC.
type Server struct {
	cfg      Config
	log      *slog.Logger
	tlsConf  *tls.Config
	quicConf *quic.Config

	// regMu serializes the Registry's presence calls (NodeRegistered,
	// NodeGone) with the updates of registered they go with.
	regMu sync.Mutex

	// mu guards the fields below it and every session's closeCode and
	// closeReason.
	mu sync.Mutex
	// conns holds every authenticated connection, registered or not.
	conns map[*session]struct{}
	// registered maps a device to its current registered session.
	registered map[identity.DeviceID]*session
	// serving is set while Serve runs; closing once it is shutting down.
	serving, closing bool
}

// NewServer checks cfg and returns a Server; Serve runs it.
func NewServer(cfg Config) (*Server, error) {
	switch {
	case cfg.TLSCertificate == nil:
		return nil, errors.New("quiccarrier: Config.TLSCertificate is required")
	case cfg.Authenticate == nil:
		return nil, errors.New("quiccarrier: Config.Authenticate is required")
	case cfg.Registry == nil:
		return nil, errors.New("quiccarrier: Config.Registry is required")
	case cfg.LeaseTTL < 0:
		return nil, fmt.Errorf("quiccarrier: Config.LeaseTTL is negative (%v)", cfg.LeaseTTL)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		conns:      make(map[*session]struct{}),
		registered: make(map[identity.DeviceID]*session),
	}
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
		VerifyPeerCertificate: s.verifyPeer,
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

// verifyPeer runs Authenticate during the handshake; its error carries the
// TLS alert the client will see.
func (s *Server) verifyPeer(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	_, err := s.cfg.Authenticate(rawCerts)
	if err == nil {
		return nil
	}
	s.log.Info("node handshake refused", "err", err)
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
// session (CodeShutdown), waits for their goroutines and returns nil. It
// does not close pc. A Server serves once.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	s.mu.Lock()
	if s.serving || s.closing {
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
	s.closeMatching(func(*session) bool { return true }, CodeShutdown, "gateway shutting down")
	cancel()
	wg.Wait()
	_ = tr.Close()
	return serveErr
}

// Disconnect closes every connection of device id at once with CodeRevoked
// (it is how revocation and removal end live sessions) and returns how many
// it closed. The registry hears NodeGone with reason.
func (s *Server) Disconnect(id identity.DeviceID, reason string) int {
	if reason == "" {
		reason = "device revoked"
	}
	return s.closeMatching(func(ss *session) bool { return ss.id == id }, CodeRevoked, reason)
}

// Sessions returns the registered sessions.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionInfo, 0, len(s.registered))
	for _, ss := range s.registered {
		out = append(out, ss.info)
	}
	return out
}

// closeMatching closes the connections match selects, outside the lock.
func (s *Server) closeMatching(match func(*session) bool, code quic.ApplicationErrorCode, reason string) int {
	s.mu.Lock()
	if code == CodeShutdown {
		s.closing = true
	}
	var victims []*session
	for ss := range s.conns {
		if match(ss) && ss.markClosingLocked(code, reason) {
			victims = append(victims, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range victims {
		_ = ss.conn.CloseWithError(code, reason)
	}
	return len(victims)
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// track adds ss to conns unless the server is shutting down.
func (s *Server) track(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[ss] = struct{}{}
	return true
}

func (s *Server) untrack(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, ss)
}

// register tells the Registry about ss and makes it the device's current
// session, replacing (and closing) an older one.
func (s *Server) register(ctx context.Context, ss *session, info SessionInfo) error {
	s.regMu.Lock()
	// Authenticate again: the device may have been revoked between the
	// handshake and now, and Disconnect may have missed this connection.
	if _, err := s.cfg.Authenticate(ss.rawCerts); err != nil {
		s.regMu.Unlock()
		return err
	}
	if err := s.cfg.Registry.NodeRegistered(ctx, info); err != nil {
		s.regMu.Unlock()
		return err
	}
	s.mu.Lock()
	old := s.registered[ss.id]
	closing := ss.closeCode != nil
	if !closing {
		s.registered[ss.id] = ss
		ss.info = info
	}
	s.mu.Unlock()
	if closing && old == nil {
		// Closed (say, by Disconnect) while the Registry was told: undo.
		s.cfg.Registry.NodeGone(ss.id, s.now(), ss.reason())
	}
	s.regMu.Unlock()
	if closing {
		return errClosedDuringRegistration
	}
	if old != nil {
		s.mu.Lock()
		marked := old.markClosingLocked(CodeReplaced, "replaced by a newer session of the same device")
		s.mu.Unlock()
		if marked {
			s.log.Info("node session replaced", "device", ss.id, "old", old.remote, "new", ss.remote)
			_ = old.conn.CloseWithError(CodeReplaced, "replaced by a newer session")
		}
	}
	return nil
}

var errClosedDuringRegistration = errors.New("connection closed during registration")

// finish ends ss: if it is still its device's current session, the
// Registry hears NodeGone.
func (s *Server) finish(ss *session, reason string) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.mu.Lock()
	current := s.registered[ss.id] == ss
	if current {
		delete(s.registered, ss.id)
	}
	s.mu.Unlock()
	if current {
		s.log.Info("node gone", "device", ss.id, "reason", reason)
		s.cfg.Registry.NodeGone(ss.id, s.now(), reason)
	}
}
