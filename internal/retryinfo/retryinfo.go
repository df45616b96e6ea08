// Package retryinfo carries "try again in N" in a gRPC status, as the
// standard RetryInfo detail, for the gateway's refusals (pairing limits,
// a busy store) and the node's reading of them: one encoding on both sides.
package retryinfo

import (
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Error is a status error with code, msg and the wait after as a RetryInfo
// detail (left out if it cannot be attached, so the refusal still stands).
func Error(code codes.Code, msg string, after time.Duration) error {
	st := status.New(code, msg)
	if withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); err == nil {
		st = withRetry
	}
	return st.Err()
}

// After is the wait a status's RetryInfo detail asks for; ok is false when
// it has none that is valid.
func After(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().IsValid() {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}
