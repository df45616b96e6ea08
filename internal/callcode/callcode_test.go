package callcode

import "testing"

// TestWireValues pins the codes as nodes and gateways of other versions
// send and expect them.
func TestWireValues(t *testing.T) {
	for got, want := range map[string]string{
		UnknownCapability: "unknown_capability", Disabled: "disabled", InvalidArguments: "invalid_arguments",
		Denied: "denied", Unsupported: "unsupported", NotAllowed: "not_allowed", OutputTooLarge: "output_too_large",
		Timeout: "timeout", Canceled: "canceled", Failed: "failed", Interrupted: "interrupted",
		Offline: "offline", NodeGone: "node_gone", Expired: "expired", BadAnswer: "bad_answer",
	} {
		if got != want {
			t.Errorf("code %q, want %q", got, want)
		}
	}
}
