package grpccarrier

import (
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/palyra/palyra-go/node/carrier"
)

// busyStatus is what a gateway whose store failed answers.
func busyStatus(t *testing.T, wait time.Duration) error {
	t.Helper()
	st, err := status.New(codes.Unavailable, "gateway busy; retry in 4 s").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

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
		{"busy at registration", busyStatus(t, 4*time.Second), rpcRegister, carrier.ErrGatewayBusy},
		{"busy on the stream", busyStatus(t, 4*time.Second), rpcStream, carrier.ErrGatewayBusy},
	}
	sentinels := []error{carrier.ErrRevoked, carrier.ErrCertificateRefused, carrier.ErrRegistrationRefused,
		carrier.ErrProtocol, carrier.ErrReplaced, carrier.ErrLeaseExpired, carrier.ErrGatewayShutdown, carrier.ErrGatewayBusy}
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

// A busy gateway's wait reaches the agent, held within bounds: a zero or a
// huge RetryInfo neither spins the node nor parks it for good.
func TestClassifyBusyWait(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ asked, want time.Duration }{
		{4 * time.Second, 4 * time.Second},
		{0, time.Second},
		{1000 * time.Hour, 5 * time.Minute},
	} {
		got, ok := carrier.RetryAfter(classify(busyStatus(t, tt.asked), rpcRegister))
		if !ok || got != tt.want {
			t.Errorf("asked to wait %v: RetryAfter = %v, %v; want %v", tt.asked, got, ok, tt.want)
		}
	}
	if carrier.IsVerdict(classify(busyStatus(t, time.Second), rpcRegister)) {
		t.Error("a busy gateway's answer is taken as its verdict on the device")
	}
}
