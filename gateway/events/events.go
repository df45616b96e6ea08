// Package events is the gateway's hub of node events: what nodes report
// (capability changes, consent decisions, errors) and what the gateway
// sees happen to them (online, offline, invocations). It keeps the recent
// events of each node for `nodes describe` and fans new ones out to
// watchers (the admin API's WatchEvents).
package events

import (
	"context"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/palyra/palyra-go/identity"
)

// Kinds of events.
const (
	KindCapabilityChanged = "capability_changed"
	KindConsent           = "consent"
	KindError             = "error"
	KindInvocation        = "invocation"
	KindOnline            = "online"
	KindOffline           = "offline"
)

// Event is one thing that happened to a node.
type Event struct {
	Time       time.Time
	DeviceID   identity.DeviceID
	Kind       string
	Capability string
	RequestID  string
	Message    string
}

const (
	// recentPerNode is how many events Recent keeps per node.
	recentPerNode = 50
	// watchBuffer is how many events a watcher may fall behind by before
	// it misses some.
	watchBuffer = 256
)

// Hub keeps recent events and fans them out. The zero value is not usable;
// use New.
type Hub struct {
	mu       sync.Mutex
	recent   map[identity.DeviceID][]Event
	watchers map[*watcher]struct{}
}

type watcher struct {
	device identity.DeviceID // zero: all
	ch     chan Event
}

// New returns an empty Hub.
func New() *Hub {
	return &Hub{recent: make(map[identity.DeviceID][]Event), watchers: make(map[*watcher]struct{})}
}

// Limits on what an event keeps of texts a node chose.
const (
	maxMessage    = 1024
	maxCapability = 128
)

// Publish records e and hands it to every watcher interested. It never
// blocks: a watcher whose buffer is full misses the event. Texts are cut
// to a sensible length: a node must not make the gateway hold megabytes.
func (h *Hub) Publish(e Event) {
	e.Message, e.Capability = clip(e.Message, maxMessage), clip(e.Capability, maxCapability)
	e.RequestID = clip(e.RequestID, maxCapability)
	h.mu.Lock()
	defer h.mu.Unlock()
	r := append(h.recent[e.DeviceID], e)
	if len(r) > recentPerNode {
		r = append(r[:0:0], r[len(r)-recentPerNode:]...)
	}
	h.recent[e.DeviceID] = r
	for w := range h.watchers {
		if w.device != (identity.DeviceID{}) && w.device != e.DeviceID {
			continue
		}
		select {
		case w.ch <- e:
		default:
		}
	}
}

// Recent returns up to recentPerNode of the device's latest events, oldest
// first.
func (h *Hub) Recent(id identity.DeviceID) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.recent[id]...)
}

// Forget drops the device's recent events (it was removed).
func (h *Hub) Forget(id identity.DeviceID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.recent, id)
}

// Watch returns a channel of the events published from now on for device
// (all devices if it is zero) until ctx ends, when the channel is closed.
func (h *Hub) Watch(ctx context.Context, device identity.DeviceID) <-chan Event {
	w := &watcher{device: device, ch: make(chan Event, watchBuffer)}
	h.mu.Lock()
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	out := make(chan Event)
	go func() {
		defer close(out)
		defer func() {
			h.mu.Lock()
			delete(h.watchers, w)
			h.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-w.ch:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
