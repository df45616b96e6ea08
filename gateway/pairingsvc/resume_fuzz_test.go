package pairingsvc

import (
	"testing"

	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// FuzzParseResumeStart feeds the first message of Resume, as any client
// may send it: it never panics, and what it accepts is a request ID of the
// store's form.
func FuzzParseResumeStart(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef", "")
	f.Add("", "not a device id")
	f.Add("0123456789ABCDEF0123456789ABCDEF", "x")
	f.Fuzz(func(t *testing.T, requestID, deviceID string) {
		id, _, err := parseResumeStart(&pairingv1.ResumeStart{RequestId: requestID, DeviceId: deviceID})
		if err == nil && (id != requestID || len(id) != requestIDLength) {
			t.Fatalf("accepted request ID %q as %q", requestID, id)
		}
	})
}
