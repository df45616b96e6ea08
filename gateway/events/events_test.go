package events

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/palyra/palyra-go/identity"
)

func device(b byte) identity.DeviceID {
	var id identity.DeviceID
	id[0] = b
	return id
}

func TestRecentKeepsTheLatest(t *testing.T) {
	h := New()
	a, b := device(1), device(2)
	for i := range recentPerNode + 10 {
		h.Publish(Event{DeviceID: a, Message: fmt.Sprint(i)})
	}
	h.Publish(Event{DeviceID: b, Message: "b"})
	got := h.Recent(a)
	if len(got) != recentPerNode || got[0].Message != "10" || got[len(got)-1].Message != fmt.Sprint(recentPerNode+9) {
		t.Fatalf("recent: %d events, first %q last %q", len(got), got[0].Message, got[len(got)-1].Message)
	}
	if got := h.Recent(b); len(got) != 1 || got[0].Message != "b" {
		t.Fatalf("other device: %v", got)
	}
	h.Forget(a)
	if got := h.Recent(a); len(got) != 0 {
		t.Fatalf("forgotten device still has %d events", len(got))
	}
}

func TestWatchFiltersAndEnds(t *testing.T) {
	h := New()
	a, b := device(1), device(2)
	ctx, cancel := context.WithCancel(t.Context())
	onlyA := h.Watch(ctx, a)
	all := h.Watch(ctx, identity.DeviceID{})
	h.Publish(Event{DeviceID: b, Kind: KindOnline})
	h.Publish(Event{DeviceID: a, Kind: KindOffline})
	timeout := time.After(5 * time.Second)
	next := func(c <-chan Event) Event {
		select {
		case e := <-c:
			return e
		case <-timeout:
			t.Fatal("no event")
		}
		return Event{}
	}
	if e := next(onlyA); e.DeviceID != a || e.Kind != KindOffline {
		t.Fatalf("filtered watcher got %+v", e)
	}
	if e := next(all); e.DeviceID != b {
		t.Fatalf("watcher of all got %+v first", e)
	}
	if e := next(all); e.DeviceID != a {
		t.Fatalf("watcher of all got %+v second", e)
	}
	cancel()
	for range onlyA {
	}
	for range all {
	}
	h.mu.Lock()
	n := len(h.watchers)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d watchers left after their contexts ended", n)
	}
}

// TestSlowWatcherDoesNotBlock: Publish never waits for a watcher.
func TestSlowWatcherDoesNotBlock(t *testing.T) {
	h := New()
	_ = h.Watch(t.Context(), identity.DeviceID{}) // never read
	for i := range 10 * watchBuffer {
		h.Publish(Event{DeviceID: device(1), Message: fmt.Sprint(i)})
	}
}

// TestPublishClipsNodeTexts: a node cannot make the gateway keep (or send
// to every watcher) megabytes per event.
func TestPublishClipsNodeTexts(t *testing.T) {
	h := New()
	big := strings.Repeat("é", 1<<20)
	h.Publish(Event{DeviceID: device(1), Message: big, Capability: big, RequestID: big})
	e := h.Recent(device(1))[0]
	if len(e.Message) > maxMessage+len("…") || len(e.Capability) > maxCapability+len("…") || len(e.RequestID) > maxCapability+len("…") {
		t.Fatalf("kept %d, %d and %d bytes", len(e.Message), len(e.Capability), len(e.RequestID))
	}
	if !utf8.ValidString(e.Message) || !strings.HasSuffix(e.Message, "…") {
		t.Fatalf("clipped message is not valid text ending in an ellipsis: %q", e.Message[len(e.Message)-8:])
	}
	if h.Publish(Event{DeviceID: device(2), Message: "short"}); h.Recent(device(2))[0].Message != "short" {
		t.Fatal("a short message was changed")
	}
}
