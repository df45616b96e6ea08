package quiccarrier

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	app := func(code quic.ApplicationErrorCode, remote bool) error {
		return fmt.Errorf("reading: %w", &quic.ApplicationError{ErrorCode: code, Remote: remote, ErrorMessage: "x"})
	}
	crypto := func(alert uint64, remote bool) error {
		return &quic.TransportError{ErrorCode: quic.TransportErrorCode(0x100 + alert), Remote: remote}
	}
	tests := []struct {
		name string
		err  error
		want error // nil: no sentinel of this package
	}{
		{"revoked code", app(wire.CodeRevoked, true), carrier.ErrRevoked},
		{"replaced", app(wire.CodeReplaced, true), carrier.ErrReplaced},
		{"lease", app(wire.CodeLeaseExpired, true), carrier.ErrLeaseExpired},
		{"shutdown", app(wire.CodeShutdown, true), carrier.ErrGatewayShutdown},
		{"shutdown with a window", app(quic.ApplicationErrorCode(wire.ShutdownWithin(25*time.Second)), true), carrier.ErrGatewayShutdown},
		{"past the windows", app(quic.ApplicationErrorCode(wire.ShutdownWithin(wire.MaxShutdownWindow)+1), true), nil},
		{"refused", app(wire.CodeRefused, true), carrier.ErrRegistrationRefused},
		{"protocol", app(wire.CodeProtocol, true), carrier.ErrProtocol},
		{"local close", app(wire.CodeRevoked, false), nil},
		{"unknown code", app(0x999, true), nil},
		{"alert certificate_revoked", crypto(44, true), carrier.ErrRevoked},
		{"alert bad_certificate", crypto(42, true), carrier.ErrCertificateRefused},
		{"alert unknown_ca", crypto(48, true), carrier.ErrCertificateRefused},
		{"alert certificate_required", crypto(116, true), carrier.ErrCertificateRefused},
		{"alert certificate_expired", crypto(45, true), carrier.ErrCertificateRefused},
		{"local alert", crypto(44, false), nil},
		{"handshake failure", crypto(40, true), nil},
		{"idle timeout", &quic.IdleTimeoutError{}, nil},
		{"network", &net.OpError{Op: "read", Err: errors.New("connection refused")}, nil},
		{"too many handshakes", &quic.TransportError{ErrorCode: quic.ConnectionRefused, Remote: true}, carrier.ErrConnectionRefused},
	}
	sentinels := []error{carrier.ErrConnectionRefused, carrier.ErrRevoked, carrier.ErrCertificateRefused, carrier.ErrReplaced, carrier.ErrLeaseExpired, carrier.ErrGatewayShutdown, carrier.ErrRegistrationRefused, carrier.ErrProtocol}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := classify(tt.err)
			if !errors.Is(got, tt.err) {
				t.Errorf("classify dropped the cause: %v", got)
			}
			for _, s := range sentinels {
				if errors.Is(got, s) != (s == tt.want) {
					t.Errorf("classify(%v) = %v; errors.Is(_, %v) = %v", tt.err, got, s, !(s == tt.want))
				}
			}
		})
	}
	if !errors.Is(classify(app(wire.CodeRevoked, true)), identity.ErrRevoked) {
		t.Error("ErrRevoked is not identity.ErrRevoked")
	}
	busy := classify(&quic.TransportError{ErrorCode: quic.ConnectionRefused, Remote: true})
	if !strings.HasPrefix(busy.Error(), "the gateway refused the QUIC connection for now (too many handshakes in progress): ") || !carrier.ProvesQUIC(busy) {
		t.Errorf("a refused handshake reads %q", busy)
	}
	goAway := classify(app(quic.ApplicationErrorCode(wire.ShutdownWithin(25*time.Second)), true))
	if within, ok := carrier.ReconnectWithin(goAway); !ok || within != 25*time.Second {
		t.Errorf("a close with a window of 25 s reads as a window of %v (%t): %v", within, ok, goAway)
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
	if err := classify(io.EOF); err != io.EOF {
		t.Errorf("classify(io.EOF) = %v", err)
	}
}

// TestKeepAliveAfterRenewals: QUIC's ping comes due only when a renewal's
// answer is more than a second late, never beside every renewal, and is
// not cut short by quic-go's cap of half the idle timeout.
func TestKeepAliveAfterRenewals(t *testing.T) {
	t.Parallel()
	renewal := carrier.SilenceLimit / 3
	if KeepAlivePeriod < renewal+time.Second {
		t.Errorf("KeepAlivePeriod %v is due within a second of the renewal every %v", KeepAlivePeriod, renewal)
	}
	if KeepAlivePeriod > MaxIdleTimeout/2 {
		t.Errorf("KeepAlivePeriod %v is past half of MaxIdleTimeout %v, where quic-go pings instead", KeepAlivePeriod, MaxIdleTimeout)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := Dial(t.Context(), carrier.Config{}); err == nil {
		t.Error("Dial with an empty Config succeeded")
	}
}
