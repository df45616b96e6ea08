package events

import (
	"context"
	"fmt"
	"testing"
	"time"

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
