// Package events is the gateway's hub of node events: what nodes report
// (capability changes, consent decisions, errors) and what the gateway
// sees happen to them (online, offline, invocations). It keeps the recent
// events of each node for `nodes describe` and fans new ones out to
// watchers (the admin API's WatchEvents).
package events

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
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

// Hub keeps recent events and fans them out. Publishing is on every call's
// path, so publishers of different devices share no lock: each device has
// its own history, and the set of watchers is replaced whole when it
// changes rather than locked for reading. The zero value is not usable;
// use New.
type Hub struct {
	// devices maps a device to its *history, made at its first event and
	// dropped by Forget.
	devices sync.Map

	// watchMu serializes the changes of watchers.
	watchMu sync.Mutex
	// watchers is the current set of watchers. It is never changed in
	// place: Watch and its end store a new slice, under watchMu.
	watchers atomic.Pointer[[]*watcher]
}

// history is one device's recent events: a slice that grows to
// recentPerNode events and is then a ring, so a publish writes one slot
// and a node that reports little holds little.
type history struct {
	// mu guards events and next, and orders the device's events for its
	// watchers as in events.
	mu     sync.Mutex
	events []Event
	// next is, once events is full, the slot of the oldest event, which
	// the next one replaces.
	next int
}

// addLocked keeps e as the newest event, dropping the oldest beyond
// recentPerNode.
func (r *history) addLocked(e Event) {
	if len(r.events) < recentPerNode {
		r.events = append(r.events, e)
		return
	}
	r.events[r.next] = e
	r.next = (r.next + 1) % recentPerNode
}

// copyLocked returns the events oldest first, in a new slice.
func (r *history) copyLocked() []Event {
	if len(r.events) == 0 {
		return nil
	}
	out := make([]Event, 0, len(r.events))
	out = append(out, r.events[r.next:]...)
	return append(out, r.events[:r.next]...)
}

type watcher struct {
	device identity.DeviceID // zero: all
	ch     chan Event
}

// New returns an empty Hub.
func New() *Hub {
	h := &Hub{}
	h.watchers.Store(new([]*watcher))
	return h
}

// Limits on what an event keeps of texts a node chose.
const (
	maxMessage    = 1024
	maxCapability = 128
)

// Publish records e and hands it to every watcher interested. It never
// blocks: a watcher whose buffer is full misses the event. Texts are cut
// to a sensible length: a node must not make the gateway hold megabytes.
// A device's watchers get its events in the order Recent lists them.
func (h *Hub) Publish(e Event) {
	e.Message, e.Capability = clip(e.Message, maxMessage), clip(e.Capability, maxCapability)
	e.RequestID = clip(e.RequestID, maxCapability)
	r := h.history(e.DeviceID)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(e)
	for _, w := range *h.watchers.Load() {
		if w.device != (identity.DeviceID{}) && w.device != e.DeviceID {
			continue
		}
		select {
		case w.ch <- e:
		default:
		}
	}
}

// history returns the device's history, making it if there is none.
func (h *Hub) history(id identity.DeviceID) *history {
	if r, ok := h.devices.Load(id); ok {
		return r.(*history)
	}
	r, _ := h.devices.LoadOrStore(id, &history{})
	return r.(*history)
}

// Recent returns up to recentPerNode of the device's latest events, oldest
// first.
func (h *Hub) Recent(id identity.DeviceID) []Event {
	v, ok := h.devices.Load(id)
	if !ok {
		return nil
	}
	r := v.(*history)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.copyLocked()
}

// Forget drops the device's recent events (it was removed).
func (h *Hub) Forget(id identity.DeviceID) {
	h.devices.Delete(id)
}

// Watch returns a channel of the events published from now on for device
// (all devices if it is zero) until ctx ends, when the channel is closed.
func (h *Hub) Watch(ctx context.Context, device identity.DeviceID) <-chan Event {
	w := &watcher{device: device, ch: make(chan Event, watchBuffer)}
	h.changeWatchers(func(ws []*watcher) []*watcher { return append(ws, w) })
	out := make(chan Event)
	go func() {
		defer close(out)
		defer h.changeWatchers(func(ws []*watcher) []*watcher {
			return slices.DeleteFunc(ws, func(x *watcher) bool { return x == w })
		})
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

// changeWatchers replaces the set of watchers with change's result, which
// is given a copy to change.
func (h *Hub) changeWatchers(change func([]*watcher) []*watcher) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	ws := change(slices.Clone(*h.watchers.Load()))
	h.watchers.Store(&ws)
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
