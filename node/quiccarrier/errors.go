package quiccarrier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// TLS alerts the gateway refuses a device certificate with.
const (
	alertBadCertificate         tls.AlertError = 42
	alertUnsupportedCertificate tls.AlertError = 43
	alertCertificateRevoked     tls.AlertError = 44
	alertCertificateExpired     tls.AlertError = 45
	alertCertificateUnknown     tls.AlertError = 46
	alertUnknownCA              tls.AlertError = 48
	alertCertificateRequired    tls.AlertError = 116
)

// cryptoErrorBase is where QUIC puts TLS alerts among transport error codes.
const cryptoErrorBase = 0x100

// classify maps the gateway's closing of the connection (an application
// error code, or a TLS alert at the handshake) to this package's errors,
// keeping err in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var app *quic.ApplicationError
	if errors.As(err, &app) && app.Remote {
		var sentinel error
		switch app.ErrorCode {
		case wire.CodeRevoked:
			sentinel = ErrRevoked
		case wire.CodeReplaced:
			sentinel = ErrReplaced
		case wire.CodeLeaseExpired:
			sentinel = ErrLeaseExpired
		case wire.CodeShutdown:
			sentinel = ErrGatewayShutdown
		case wire.CodeRefused:
			sentinel = ErrRegistrationRefused
		case wire.CodeProtocol:
			sentinel = ErrProtocol
		}
		if sentinel != nil {
			return fmt.Errorf("%w: %w", sentinel, err)
		}
		return err
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.Remote && te.ErrorCode >= cryptoErrorBase && te.ErrorCode < cryptoErrorBase+0x100 {
		switch alert := tls.AlertError(te.ErrorCode - cryptoErrorBase); alert {
		case alertCertificateRevoked:
			return fmt.Errorf("%w: the gateway refused the handshake (%v): %w", ErrRevoked, alert, err)
		case alertBadCertificate, alertUnsupportedCertificate, alertCertificateExpired,
			alertCertificateUnknown, alertUnknownCA, alertCertificateRequired:
			return fmt.Errorf("%w (%v): %w", ErrCertificateRefused, alert, err)
		}
	}
	return err
}

// classifyRead classifies an error reading a stream: a stream that ended
// because the connection closed reports the connection's reason.
func classifyRead(conn *quic.Conn, err error) error {
	var app *quic.ApplicationError
	var te *quic.TransportError
	if !errors.As(err, &app) && !errors.As(err, &te) {
		// A plain EOF or deadline: the connection may know more.
		select {
		case <-conn.Context().Done():
			if cause := context.Cause(conn.Context()); cause != nil {
				return classify(cause)
			}
		default:
		}
	}
	return classify(err)
}

// errorFrameErr maps an Error frame to this package's errors.
func errorFrameErr(e *nodev1.Error) error {
	var sentinel error
	switch e.GetCode() {
	case nodev1.Error_CODE_REVOKED:
		sentinel = ErrRevoked
	case nodev1.Error_CODE_UNKNOWN_DEVICE:
		sentinel = ErrRegistrationRefused
	default:
		sentinel = ErrProtocol
	}
	return fmt.Errorf("%w: the gateway says %q (%v)", sentinel, e.GetMessage(), e.GetCode())
}

// isTimeout reports a deadline (not an idle timeout, which is a network
// failure).
func isTimeout(err error) bool {
	var ne net.Error
	var idle *quic.IdleTimeoutError
	return errors.As(err, &ne) && ne.Timeout() && !errors.As(err, &idle)
}
