// Package carrier is what the node's two carriers of the node protocol
// share, and what the node agent sees of them: the session Config, the
// InvokeHandler that runs the gateway's calls, the errors that say why a
// session ended (revoked, replaced, refused, network), so the agent can
// decide whether to reconnect, Backoff to pace the reconnects, and the Conn
// both carriers' sessions are. It also holds the logic that does not depend
// on the wire: dialing the addresses in turn, the TLS configuration that
// pins the gateway's CA, reading Welcome, keeping the lease and running one
// call. node/quiccarrier and node/grpccarrier add only their wire and the
// mapping of its signals to these errors.
//
// It must import neither quic-go nor gRPC (so that the TCP fallback does not
// drag in QUIC), nor the gateway or anything from the GUI.
package carrier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Conn is a registered session on either carrier: QUIC
// (quiccarrier.Conn) or gRPC over TCP (grpccarrier.Conn).
type Conn interface {
	Welcome() *nodev1.Welcome
	// Address is the gateway address (of Config.Addresses) the session
	// was dialed at.
	Address() string
	Serve(ctx context.Context) error
	SendCapabilities(caps []*nodev1.Capability) error
	SendEvent(ev *nodev1.NodeEvent) error
	RenewCertificate(ctx context.Context, csrDER []byte) ([]byte, error)
	Close() error
}

// Config configures a session, on either carrier.
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
	// and returns their results; ctx ends at the call's deadline, when the
	// gateway cancels it, when the context Serve runs with ends, and when
	// Calls ends or, without Calls, when the session ends (with
	// ErrSessionEnded). nil refuses every call.
	Invoke InvokeHandler
	// Calls, if set, is the lifetime of the calls past their session:
	// each call's context is its child, and a call running when its
	// session ends (other than by the end of Serve's context) goes on.
	// The gateway then delivers it again on the next session, where the
	// handler can answer with its result; the carrier sends it nowhere,
	// and Serve does not wait for it.
	Calls context.Context
	// Reached, if set, is called once the gateway has answered: the QUIC
	// carrier calls it when its handshake completes, before registering,
	// so that a slow registration (a gateway busy with a storm of
	// reconnects) is not mistaken for a network that drops UDP.
	Reached func()

	// address is the one of Addresses being dialed: DialEach sets it for
	// each, and the Session remembers it.
	address string
}

// InvokeHandler runs one call; progress sends a Progress frame.
type InvokeHandler func(ctx context.Context, inv *nodev1.Invoke, progress func(message string)) *nodev1.Result

// Validate checks the required fields and fills in defaults; DialEach
// calls it.
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

// DialEach validates cfg and calls dial for its addresses in order, with
// the TLS configuration for each (ClientTLS), until one connects. The
// gateway's verdict on this device (see IsVerdict) stops at the address
// that gave it; other failures try the next address, and are all returned
// if none connects. A busy gateway (ErrGatewayBusy) stops there too: its
// other addresses share its store. carrier names the transport in messages.
func DialEach[C any](ctx context.Context, cfg Config, carrier string, dial func(context.Context, Config, string, *tls.Config) (C, error)) (C, error) {
	var none C
	if err := cfg.Validate(); err != nil {
		return none, err
	}
	var errs []error
	for _, addr := range cfg.Addresses {
		tlsConf, err := ClientTLS(cfg, addr)
		var c C
		if err == nil {
			one := cfg
			one.address = addr
			c, err = dial(ctx, one, addr, tlsConf)
		}
		if err == nil {
			return c, nil
		}
		err = fmt.Errorf("dialing gateway over %s at %s: %w", carrier, addr, err)
		if ctx.Err() != nil || EndsAttempt(err) {
			return none, err
		}
		cfg.Logger.Info("gateway address failed", "address", addr, "transport", carrier, "err", err)
		errs = append(errs, err)
	}
	return none, errors.Join(errs...)
}

// ClientTLS is the TLS configuration for dialing the gateway at addr
// (HOST:PORT): TLS 1.3, the device certificate from cfg.ClientCertificate,
// and the gateway's certificate verified against cfg.CACertificate for
// that host. The carrier may add what its wire needs (ALPN).
func ClientTLS(cfg Config, addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	tlsConf := PinnedTLS(host, cfg.CACertificate, cfg.Now, nil)
	tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return cfg.ClientCertificate()
	}
	return tlsConf, nil
}

// PinnedTLS is a TLS client configuration that trusts the gateway at host
// as a node does: addresses may be IP literals the certificate names as IP
// SANs, and trust is ca, the CA pinned when pairing, not the system roots,
// so verification is VerifyPeerCertificate's, with identity's rules, at
// now. seen, if not nil, is given the gateway's certificate before it is
// verified, so a probe can describe what answered. A nil ca accepts any
// certificate: only such a probe may ask for that (Validate refuses a
// Config without a CA).
func PinnedTLS(host string, ca *x509.Certificate, now func() time.Time, seen func(*x509.Certificate)) *tls.Config {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if seen != nil && len(rawCerts) > 0 {
				if leaf, err := x509.ParseCertificate(rawCerts[0]); err == nil {
					seen(leaf)
				}
			}
			if ca == nil {
				return nil
			}
			return identity.VerifyServerCertificate(ca, rawCerts, host, now())
		},
	}
	if _, err := netip.ParseAddr(host); err != nil {
		conf.ServerName = host
	}
	return conf
}
