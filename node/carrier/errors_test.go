package carrier

import (
	"errors"
	"fmt"
	"testing"

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
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsVerdict(tt.err); got != tt.want {
			t.Errorf("IsVerdict(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
