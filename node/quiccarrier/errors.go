package quiccarrier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
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

// closeCodes maps the application error codes the gateway closes a
// connection with to node/carrier's errors.
var closeCodes = map[quic.ApplicationErrorCode]error{
	wire.CodeRevoked:      carrier.ErrRevoked,
	wire.CodeReplaced:     carrier.ErrReplaced,
	wire.CodeLeaseExpired: carrier.ErrLeaseExpired,
	wire.CodeShutdown:     carrier.ErrGatewayShutdown,
	wire.CodeRefused:      carrier.ErrRegistrationRefused,
	wire.CodeProtocol:     carrier.ErrProtocol,
}

// classify maps the gateway's closing of the connection (an application
// error code, or a TLS alert at the handshake) to node/carrier's errors,
// keeping err in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var app *quic.ApplicationError
	if errors.As(err, &app) && app.Remote {
		if within, ok := wire.ShutdownWindow(uint64(app.ErrorCode)); ok {
			// A shutting-down gateway's GoAway, by its close.
			return fmt.Errorf("%w: %w", &carrier.GoAwayError{Within: within, Message: app.ErrorMessage}, err)
		}
		if sentinel := closeCodes[app.ErrorCode]; sentinel != nil {
			return fmt.Errorf("%w: %w", sentinel, err)
		}
		return err
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.Remote && te.ErrorCode == quic.ConnectionRefused {
		// The gateway's cap on handshakes in progress, or quic-go's full
		// accept queue: it is busy (or flooded), and a later attempt may
		// get through.
		return fmt.Errorf("%w: %w", carrier.ErrConnectionRefused, err)
	}
	if errors.As(err, &te) && te.Remote && te.ErrorCode >= cryptoErrorBase && te.ErrorCode < cryptoErrorBase+0x100 {
		switch alert := tls.AlertError(te.ErrorCode - cryptoErrorBase); alert {
		case alertCertificateRevoked:
			return fmt.Errorf("%w: the gateway refused the handshake (%v): %w", carrier.ErrRevoked, alert, err)
		case alertBadCertificate, alertUnsupportedCertificate, alertCertificateExpired,
			alertCertificateUnknown, alertUnknownCA, alertCertificateRequired:
			return fmt.Errorf("%w (%v): %w", carrier.ErrCertificateRefused, alert, err)
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
