package events

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testwait"
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
	if n := len(*h.watchers.Load()); n != 0 {
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

// TestConcurrentPublish: publishers of one device, racing each other and
// those of another device, leave the device's latest recentPerNode events
// in Recent, each publisher's in its order, and the device's watchers see
// its events in the order Recent keeps them.
func TestConcurrentPublish(t *testing.T) {
	const publishers, each = 8, 30 // with the other device's, within watchBuffer: no watcher misses any
	h := New()
	a, b := device(1), device(2)
	onlyA := h.Watch(t.Context(), a)
	all := h.Watch(t.Context(), identity.DeviceID{})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				h.Publish(Event{DeviceID: a, Message: fmt.Sprintf("%d/%02d", p, i)})
			}
		})
	}
	wg.Go(func() {
		for i := range watchBuffer - publishers*each {
			h.Publish(Event{DeviceID: b, Message: fmt.Sprint(i)})
		}
	})
	wg.Wait()

	got := h.Recent(a)
	if len(got) != recentPerNode {
		t.Fatalf("Recent holds %d events, want %d", len(got), recentPerNode)
	}
	// Of each publisher, Recent holds its last events, oldest first.
	next := map[int]int{}
	for _, e := range got {
		var p, i int
		if _, err := fmt.Sscanf(e.Message, "%d/%d", &p, &i); err != nil || e.DeviceID != a {
			t.Fatalf("Recent(a) holds %+v", e)
		}
		if n, seen := next[p]; seen && i != n {
			t.Fatalf("publisher %d: event %d follows %d in Recent", p, i, n-1)
		}
		next[p] = i + 1
	}
	for p, n := range next {
		if n != each {
			t.Fatalf("publisher %d: Recent ends with its event %d, not its last (%d)", p, n-1, each-1)
		}
	}

	var seenA []Event
	for range publishers * each {
		seenA = append(seenA, testwait.Recv(t, onlyA, 5*time.Second, "an event of device a"))
	}
	if tail := seenA[len(seenA)-recentPerNode:]; !slices.Equal(tail, got) {
		t.Fatalf("the watcher of device a saw its last events in another order than Recent:\nwatched %v\nrecent  %v", messages(tail), messages(got))
	}
	var seenAll []Event
	for range watchBuffer {
		if e := testwait.Recv(t, all, 5*time.Second, "an event"); e.DeviceID == a {
			seenAll = append(seenAll, e)
		}
	}
	if !slices.Equal(seenAll, seenA) {
		t.Fatalf("the watcher of all devices saw device a's events in another order than its own watcher")
	}
}

func messages(es []Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Message
	}
	return out
}

// BenchmarkPublish publishes to a device whose history is full, from as
// many goroutines as GOMAXPROCS, with a watcher of all devices that reads
// everything: a publish writes one slot of a ring and allocates nothing.
func BenchmarkPublish(b *testing.B) {
	h := New()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	go func() {
		for range h.Watch(ctx, identity.DeviceID{}) {
		}
	}()
	ids := []identity.DeviceID{device(1), device(2), device(3), device(4)}
	for _, id := range ids {
		for range recentPerNode {
			h.Publish(Event{DeviceID: id})
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			h.Publish(Event{DeviceID: ids[i%len(ids)], Kind: KindInvocation, Message: "ok"})
		}
	})
}
