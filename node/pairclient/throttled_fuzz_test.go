package pairclient

import (
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// FuzzThrottled reads arbitrary gateway statuses: only ResourceExhausted
// with a RetryInfo is a refusal, and its wait stays between a second and
// maxRetryAfter whatever the gateway says.
func FuzzThrottled(f *testing.F) {
	seed := func(c codes.Code, d time.Duration) {
		st, err := status.New(c, "too many pairing attempts from this address; try again in 10 s").
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			f.Fatal(err)
		}
		b, err := proto.Marshal(st.Proto())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(codes.ResourceExhausted, 10*time.Second)
	seed(codes.ResourceExhausted, -time.Hour)
	seed(codes.ResourceExhausted, 1000*time.Hour)
	seed(codes.PermissionDenied, time.Second)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p spb.Status
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		st := status.FromProto(&p)
		err := throttled("gw:7443", st)
		if err == nil {
			return
		}
		te, ok := err.(*ThrottledError)
		if !ok || st.Code() != codes.ResourceExhausted {
			t.Fatalf("%v from status %v", err, st)
		}
		if te.RetryAfter < time.Second || te.RetryAfter > maxRetryAfter {
			t.Fatalf("retry after %v, outside [1s, %v]", te.RetryAfter, maxRetryAfter)
		}
	})
}

func TestThrottledBoundsTheWait(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code codes.Code
		d    time.Duration
		want time.Duration // 0: not a refusal
	}{
		{codes.ResourceExhausted, 10 * time.Second, 10 * time.Second},
		{codes.ResourceExhausted, 0, time.Second},
		{codes.ResourceExhausted, 1000 * time.Hour, maxRetryAfter},
		{codes.PermissionDenied, 10 * time.Second, 0},
	} {
		st, err := status.New(tc.code, "refused").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(tc.d)})
		if err != nil {
			t.Fatal(err)
		}
		got := throttled("gw:7443", st)
		if tc.want == 0 {
			if got != nil {
				t.Errorf("%s: %v, want no refusal", tc.code, got)
			}
			continue
		}
		if te, ok := got.(*ThrottledError); !ok || te.RetryAfter != tc.want {
			t.Errorf("%s after %v: %v, want a wait of %v", tc.code, tc.d, got, tc.want)
		}
	}
	// gRPC's own ResourceExhausted (a message over its limit) has no
	// RetryInfo and is not a refusal to pair.
	if got := throttled("gw:7443", status.New(codes.ResourceExhausted, "grpc: received message larger than max")); got != nil {
		t.Errorf("size limit read as a refusal: %v", got)
	}
}
