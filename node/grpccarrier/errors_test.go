package grpccarrier

import (
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/node/carrier"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		from rpc
		want error // nil: no sentinel
	}{
		{"revoked at registration", status.Error(codes.PermissionDenied, "device revoked"), rpcRegister, carrier.ErrRevoked},
		{"revoked on the stream", status.Error(codes.PermissionDenied, "removed by admin"), rpcStream, carrier.ErrRevoked},
		{"no certificate", status.Error(codes.Unauthenticated, "a device certificate is required"), rpcRegister, carrier.ErrCertificateRefused},
		{"registration refused", status.Error(codes.FailedPrecondition, "registration refused"), rpcRegister, carrier.ErrRegistrationRefused},
		{"stream before registration", status.Error(codes.FailedPrecondition, "call RegisterNode first"), rpcStream, carrier.ErrProtocol},
		{"replaced", status.Error(codes.Aborted, "replaced by a newer session"), rpcStream, carrier.ErrReplaced},
		{"lease expired", status.Error(codes.DeadlineExceeded, "lease expired"), rpcStream, carrier.ErrLeaseExpired},
		{"our own registration timeout", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), rpcRegister, nil},
		{"shutdown", status.Error(codes.Unavailable, "gateway shutting down"), rpcStream, carrier.ErrGatewayShutdown},
		{"network", status.Error(codes.Unavailable, "connection refused"), rpcStream, nil},
		{"protocol", status.Error(codes.InvalidArgument, "empty frame"), rpcStream, carrier.ErrProtocol},
		{"too large", status.Error(codes.ResourceExhausted, "message larger than max"), rpcStream, carrier.ErrProtocol},
		{"not a status", io.EOF, rpcStream, nil},
	}
	sentinels := []error{carrier.ErrRevoked, carrier.ErrCertificateRefused, carrier.ErrRegistrationRefused,
		carrier.ErrProtocol, carrier.ErrReplaced, carrier.ErrLeaseExpired, carrier.ErrGatewayShutdown}
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
