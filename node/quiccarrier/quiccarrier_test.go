package quiccarrier

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// seq returns a rand func cycling through vals.
func seq(vals ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vals[i%len(vals)]
		i++
		return v
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	// With rand just below 1 each delay is just below its ceiling.
	b := NewBackoff(seq(0.999999))
	wantCeil := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, ceil := range wantCeil {
		if got := b.Ceiling(); got != ceil {
			t.Errorf("attempt %d: ceiling %v, want %v", i, got, ceil)
		}
		d := b.Next()
		if d < ceil*99/100 || d >= ceil {
			t.Errorf("attempt %d: delay %v, want just below %v", i, d, ceil)
		}
	}
	// Many more attempts never pass the cap (no overflow).
	for range 1000 {
		if d := b.Next(); d >= BackoffCap || d < 0 {
			t.Fatalf("delay %v outside [0, %v)", d, BackoffCap)
		}
	}
}

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    float64
		want time.Duration
	}{
		{0, 0},
		{0.5, 250 * time.Millisecond},
		{0.25, 125 * time.Millisecond},
		{-1, 0},  // out of range: treated as 0
		{1.5, 0}, // out of range: treated as 0
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.r), func(t *testing.T) {
			t.Parallel()
			if got := NewBackoff(seq(tt.r)).Next(); got != tt.want {
				t.Errorf("first delay with rand %v = %v, want %v", tt.r, got, tt.want)
			}
		})
	}
}

func TestBackoffReset(t *testing.T) {
	t.Parallel()
	b := NewBackoff(seq(0.5))
	for range 5 {
		b.Next()
	}
	b.SessionEnded(StableAfter - time.Second)
	if got := b.Ceiling(); got != 16*time.Second {
		t.Errorf("after a short session the ceiling is %v, want 16s", got)
	}
	b.SessionEnded(StableAfter)
	if got := b.Next(); got != 250*time.Millisecond {
		t.Errorf("after a stable minute the delay is %v, want 250ms", got)
	}
	b.Next()
	b.Reset()
	if got := b.Ceiling(); got != BackoffStart {
		t.Errorf("after Reset the ceiling is %v", got)
	}
	if NewBackoff(nil).Next() >= BackoffStart {
		t.Error("default rand out of range")
	}
}

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
		{"revoked code", app(wire.CodeRevoked, true), ErrRevoked},
		{"replaced", app(wire.CodeReplaced, true), ErrReplaced},
		{"lease", app(wire.CodeLeaseExpired, true), ErrLeaseExpired},
		{"shutdown", app(wire.CodeShutdown, true), ErrGatewayShutdown},
		{"refused", app(wire.CodeRefused, true), ErrRegistrationRefused},
		{"protocol", app(wire.CodeProtocol, true), ErrProtocol},
		{"local close", app(wire.CodeRevoked, false), nil},
		{"unknown code", app(0x999, true), nil},
		{"alert certificate_revoked", crypto(44, true), ErrRevoked},
		{"alert bad_certificate", crypto(42, true), ErrCertificateRefused},
		{"alert unknown_ca", crypto(48, true), ErrCertificateRefused},
		{"alert certificate_required", crypto(116, true), ErrCertificateRefused},
		{"alert certificate_expired", crypto(45, true), ErrCertificateRefused},
		{"local alert", crypto(44, false), nil},
		{"handshake failure", crypto(40, true), nil},
		{"idle timeout", &quic.IdleTimeoutError{}, nil},
		{"network", &net.OpError{Op: "read", Err: errors.New("connection refused")}, nil},
	}
	sentinels := []error{ErrRevoked, ErrCertificateRefused, ErrReplaced, ErrLeaseExpired, ErrGatewayShutdown, ErrRegistrationRefused, ErrProtocol}
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
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
	if err := classify(io.EOF); err != io.EOF {
		t.Errorf("classify(io.EOF) = %v", err)
	}
}

func TestErrorFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code nodev1.Error_Code
		want error
	}{
		{nodev1.Error_CODE_REVOKED, ErrRevoked},
		{nodev1.Error_CODE_UNKNOWN_DEVICE, ErrRegistrationRefused},
		{nodev1.Error_CODE_MALFORMED, ErrProtocol},
		{nodev1.Error_CODE_INTERNAL, ErrProtocol},
	}
	for _, tt := range tests {
		if err := errorFrameErr(&nodev1.Error{Code: tt.code, Message: "m"}); !errors.Is(err, tt.want) {
			t.Errorf("%v: %v, want %v", tt.code, err, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := Dial(t.Context(), Config{}); err == nil {
		t.Error("Dial with an empty Config succeeded")
	}
}
