package grpccarrier

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// shutdownMessage is the Unavailable status message the gateway ends
// sessions with when it shuts down (gateway/grpccarrier); other Unavailable
// statuses are network failures.
const shutdownMessage = "gateway shutting down"

// rpc says which call an error came from: some codes mean different things.
type rpc int

const (
	rpcRegister rpc = iota
	rpcStream
)

// classify maps a gRPC status from the gateway to node/quiccarrier's errors,
// keeping err in the chain.
func classify(err error, from rpc) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var sentinel error
	switch st.Code() {
	case codes.PermissionDenied:
		sentinel = quiccarrier.ErrRevoked
	case codes.Unauthenticated:
		sentinel = quiccarrier.ErrCertificateRefused
	case codes.Unavailable:
		if st.Message() == shutdownMessage {
			sentinel = quiccarrier.ErrGatewayShutdown
		}
	case codes.FailedPrecondition:
		sentinel = quiccarrier.ErrProtocol
		if from == rpcRegister {
			sentinel = quiccarrier.ErrRegistrationRefused
		}
	case codes.InvalidArgument, codes.ResourceExhausted:
		sentinel = quiccarrier.ErrProtocol
	case codes.Aborted:
		if from == rpcStream {
			sentinel = quiccarrier.ErrReplaced
		}
	case codes.DeadlineExceeded:
		// The stream has no deadline of ours: the gateway ended it.
		if from == rpcStream {
			sentinel = quiccarrier.ErrLeaseExpired
		}
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// errorFrameErr maps an Error frame to node/quiccarrier's errors.
func errorFrameErr(e *nodev1.Error) error {
	var sentinel error
	switch e.GetCode() {
	case nodev1.Error_CODE_REVOKED:
		sentinel = quiccarrier.ErrRevoked
	case nodev1.Error_CODE_UNKNOWN_DEVICE:
		sentinel = quiccarrier.ErrRegistrationRefused
	default:
		sentinel = quiccarrier.ErrProtocol
	}
	return fmt.Errorf("%w: the gateway says %q (%v)", sentinel, e.GetMessage(), e.GetCode())
}
