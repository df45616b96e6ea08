package grpccarrier

import (
	"fmt"

	"github.com/palyra/palyra-go/internal/retryinfo"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/node/carrier"
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

// classify maps a gRPC status from the gateway to node/carrier's errors,
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
		sentinel = carrier.ErrRevoked
	case codes.Unauthenticated:
		sentinel = carrier.ErrCertificateRefused
	case codes.Unavailable:
		if st.Message() == shutdownMessage {
			sentinel = carrier.ErrGatewayShutdown
		}
		// The gateway's store failed: it says when to come back.
		if after, ok := retryinfo.After(st); ok {
			sentinel = carrier.Busy(after, st.Message())
		}
	case codes.FailedPrecondition:
		sentinel = carrier.ErrProtocol
		if from == rpcRegister {
			sentinel = carrier.ErrRegistrationRefused
		}
	case codes.InvalidArgument, codes.ResourceExhausted:
		sentinel = carrier.ErrProtocol
	case codes.Aborted:
		if from == rpcStream {
			sentinel = carrier.ErrReplaced
		}
	case codes.DeadlineExceeded:
		// The stream has no deadline of ours: the gateway ended it.
		if from == rpcStream {
			sentinel = carrier.ErrLeaseExpired
		}
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
