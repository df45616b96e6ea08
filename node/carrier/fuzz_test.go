package carrier

import (
	"testing"

	"google.golang.org/protobuf/proto"

	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// FuzzEndingFrames: whatever a gateway sends as an Error or GoAway frame,
// the wait or window the node takes from it stays within its bounds.
func FuzzEndingFrames(f *testing.F) {
	for _, fr := range []*nodev1.Frame{
		{Body: &nodev1.Frame_GoAway{GoAway: &nodev1.GoAway{ReconnectWithinMs: 12_000, Message: "gateway shutting down"}}},
		{Body: &nodev1.Frame_GoAway{GoAway: &nodev1.GoAway{ReconnectWithinMs: -1}}},
		{Body: &nodev1.Frame_Error{Error: &nodev1.Error{Code: nodev1.Error_CODE_BUSY, RetryAfterMs: 1 << 62}}},
	} {
		b, err := proto.Marshal(fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr nodev1.Frame
		if proto.Unmarshal(b, &fr) != nil {
			return
		}
		switch body := fr.Body.(type) {
		case *nodev1.Frame_GoAway:
			g := GoAway(body.GoAway)
			if g.Within < 0 || g.Within > maxGoAwayWindow {
				t.Fatalf("window %v outside [0, %v]", g.Within, maxGoAwayWindow)
			}
			if w, ok := ReconnectWithin(g); !ok || w != g.Within {
				t.Fatalf("ReconnectWithin = %v, %v", w, ok)
			}
		case *nodev1.Frame_Error:
			if wait, busy := RetryAfter(ErrorFrame(body.Error)); busy && (wait < minBusyRetry || wait > maxBusyRetry) {
				t.Fatalf("busy wait %v outside [%v, %v]", wait, minBusyRetry, maxBusyRetry)
			}
		}
	})
}
