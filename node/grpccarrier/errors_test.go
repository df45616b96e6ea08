package grpccarrier

import (
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		from rpc
		want error // nil: no sentinel
	}{
		{"revoked at registration", status.Error(codes.PermissionDenied, "device revoked"), rpcRegister, quiccarrier.ErrRevoked},
		{"revoked on the stream", status.Error(codes.PermissionDenied, "removed by admin"), rpcStream, quiccarrier.ErrRevoked},
		{"no certificate", status.Error(codes.Unauthenticated, "a device certificate is required"), rpcRegister, quiccarrier.ErrCertificateRefused},
		{"registration refused", status.Error(codes.FailedPrecondition, "registration refused"), rpcRegister, quiccarrier.ErrRegistrationRefused},
		{"stream before registration", status.Error(codes.FailedPrecondition, "call RegisterNode first"), rpcStream, quiccarrier.ErrProtocol},
		{"replaced", status.Error(codes.Aborted, "replaced by a newer session"), rpcStream, quiccarrier.ErrReplaced},
		{"lease expired", status.Error(codes.DeadlineExceeded, "lease expired"), rpcStream, quiccarrier.ErrLeaseExpired},
		{"our own registration timeout", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), rpcRegister, nil},
		{"shutdown", status.Error(codes.Unavailable, "gateway shutting down"), rpcStream, quiccarrier.ErrGatewayShutdown},
		{"network", status.Error(codes.Unavailable, "connection refused"), rpcStream, nil},
		{"protocol", status.Error(codes.InvalidArgument, "empty frame"), rpcStream, quiccarrier.ErrProtocol},
		{"too large", status.Error(codes.ResourceExhausted, "message larger than max"), rpcStream, quiccarrier.ErrProtocol},
		{"not a status", io.EOF, rpcStream, nil},
	}
	sentinels := []error{quiccarrier.ErrRevoked, quiccarrier.ErrCertificateRefused, quiccarrier.ErrRegistrationRefused,
		quiccarrier.ErrProtocol, quiccarrier.ErrReplaced, quiccarrier.ErrLeaseExpired, quiccarrier.ErrGatewayShutdown}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := classify(tt.err, tt.from)
			if !errors.Is(got, tt.err) {
				t.Errorf("classify(%v) = %v, lost the original error", tt.err, got)
			}
			for _, s := range sentinels {
				if is := errors.Is(got, s); is != (s == tt.want) {
					t.Errorf("classify(%v) = %v; errors.Is(%v) = %v", tt.err, got, s, is)
				}
			}
		})
	}
	if classify(nil, rpcStream) != nil {
		t.Error("classify(nil) != nil")
	}
}

func TestErrorFrameErr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code nodev1.Error_Code
		want error
	}{
		{nodev1.Error_CODE_REVOKED, quiccarrier.ErrRevoked},
		{nodev1.Error_CODE_UNKNOWN_DEVICE, quiccarrier.ErrRegistrationRefused},
		{nodev1.Error_CODE_MALFORMED, quiccarrier.ErrProtocol},
		{nodev1.Error_CODE_INTERNAL, quiccarrier.ErrProtocol},
	}
	for _, tt := range tests {
		if err := errorFrameErr(&nodev1.Error{Code: tt.code, Message: "m"}); !errors.Is(err, tt.want) {
			t.Errorf("errorFrameErr(%v) = %v, want %v", tt.code, err, tt.want)
		}
	}
}
