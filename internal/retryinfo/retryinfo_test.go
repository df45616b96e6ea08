package retryinfo

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoundTrip(t *testing.T) {
	err := Error(codes.ResourceExhausted, "slow down", 7*time.Second)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || st.Message() != "slow down" {
		t.Fatalf("status %v", st)
	}
	if after, ok := After(st); !ok || after != 7*time.Second {
		t.Errorf("After = %v, %v; want 7s, true", after, ok)
	}
	if _, ok := After(status.New(codes.Unavailable, "no detail")); ok {
		t.Error("After found a wait in a status without RetryInfo")
	}
}
