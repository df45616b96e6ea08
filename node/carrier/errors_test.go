package carrier

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

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
		{nodev1.Error_CODE_BUSY, ErrGatewayBusy},
	}
	for _, tt := range tests {
		if err := ErrorFrame(&nodev1.Error{Code: tt.code, Message: "m"}); !errors.Is(err, tt.want) {
			t.Errorf("%v: %v, want %v", tt.code, err, tt.want)
		}
	}
	if err := ErrorFrame(&nodev1.Error{Code: nodev1.Error_CODE_REVOKED, Message: "removed by admin"}); !errors.Is(err, identity.ErrRevoked) {
		t.Errorf("a revoking Error frame gives %v, not identity.ErrRevoked", err)
	}
}

func TestIsVerdict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("dialing: %w", ErrRevoked), true},
		{fmt.Errorf("dialing: %w", ErrCertificateRefused), true},
		{fmt.Errorf("dialing: %w", ErrRegistrationRefused), true},
		{ErrReplaced, false},
		{ErrLeaseExpired, false},
		{ErrGatewayShutdown, false},
		{ErrProtocol, false},
		{errors.New("connection refused"), false},
		{fmt.Errorf("registering: %w", Busy(time.Second, "busy")), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsVerdict(tt.err); got != tt.want {
			t.Errorf("IsVerdict(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A busy Error frame carries the gateway's wait, within bounds, and ends
// the attempt (another address of the gateway shares its store) without
// being a verdict on the device.
func TestBusyErrorFrame(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ms   int64
		want time.Duration
	}{
		{4000, 4 * time.Second},
		{0, time.Second},
		{-5, time.Second},
		{1 << 62, 5 * time.Minute}, // would overflow a Duration
	} {
		err := fmt.Errorf("registering: %w", ErrorFrame(&nodev1.Error{Code: nodev1.Error_CODE_BUSY, Message: "gateway busy; retry in 4 s", RetryAfterMs: tt.ms}))
		got, ok := RetryAfter(err)
		if !ok || got != tt.want {
			t.Errorf("retry_after_ms %d: RetryAfter = %v, %v; want %v", tt.ms, got, ok, tt.want)
		}
		if !EndsAttempt(err) || IsVerdict(err) || errors.Is(err, ErrCertificateRefused) {
			t.Errorf("retry_after_ms %d: %v ends the attempt %v, is a verdict %v", tt.ms, err, EndsAttempt(err), IsVerdict(err))
		}
	}
	if _, ok := RetryAfter(ErrRevoked); ok {
		t.Error("RetryAfter of a revocation")
	}
}
