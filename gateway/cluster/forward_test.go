package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
	peerv1 "github.com/palyra/palyra-go/proto/peer/v1"
)

var device = identity.DeviceIDFromPublicKey(make([]byte, 32))

func goodCall() *peerv1.Call {
	return &peerv1.Call{DeviceId: device.String(), Epoch: 7, TimeoutMs: 1500,
		Invoke: &nodev1.Invoke{RequestId: "01J", Capability: "system.info", ArgsJson: []byte("{}")}}
}

func TestParseCall(t *testing.T) {
	t.Parallel()
	id, timeout, err := parseCall(goodCall())
	if err != nil || id != device || timeout != 1500*time.Millisecond {
		t.Fatalf("parseCall = %v, %v, %v", id, timeout, err)
	}
	long := goodCall()
	long.TimeoutMs = (time.Hour).Milliseconds()
	if _, timeout, err := parseCall(long); err != nil || timeout != maxCallTimeout {
		t.Fatalf("an hour's timeout: %v, %v; want %v", timeout, err, maxCallTimeout)
	}
	for _, tt := range []struct {
		name string
		edit func(*peerv1.Call)
		want string
	}{
		{"bad device", func(c *peerv1.Call) { c.DeviceId = "nope" }, "the call's device"},
		{"no epoch", func(c *peerv1.Call) { c.Epoch = 0 }, "no session epoch"},
		{"no invocation", func(c *peerv1.Call) { c.Invoke = nil }, "no invocation"},
		{"no capability", func(c *peerv1.Call) { c.Invoke.Capability = "" }, "no invocation, request ID or capability"},
		{"no timeout", func(c *peerv1.Call) { c.TimeoutMs = 0 }, "is not positive"},
	} {
		c := goodCall()
		tt.edit(c)
		if _, _, err := parseCall(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want it to say %q", tt.name, err, tt.want)
		}
	}
}

// The holder decodes a call from bytes another gateway sent.
func FuzzParseCall(f *testing.F) {
	b, err := wire.AppendFrame(nil, goodCall())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[4:])
	f.Add([]byte{})
	f.Add([]byte{0x10, 0x00})
	f.Fuzz(func(t *testing.T, body []byte) {
		frame := append([]byte{byte(len(body) >> 24), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
		var call peerv1.Call
		if err := wire.ReadFrame(strings.NewReader(string(frame)), &call); err != nil {
			return
		}
		id, timeout, err := parseCall(&call)
		if err != nil {
			return
		}
		if id.IsZero() || timeout <= 0 || timeout > maxCallTimeout || call.GetEpoch() == 0 {
			t.Fatalf("accepted %v: %v, %v", &call, id, timeout)
		}
	})
}

// fakeStore records the route writes and fails the first ones it is told
// to; a stand-in for the database, whose own tests are the store's.
type fakeStore struct {
	Store
	mu     sync.Mutex
	fail   int
	writes chan string
}

func (s *fakeStore) write(what string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("the database is down")
	}
	s.writes <- what
	return nil
}

func (s *fakeStore) AddRoute(_ context.Context, r store.Route, _ time.Time) error {
	return s.write(fmt.Sprintf("add %s %d", r.GatewayID, r.Epoch))
}

func (s *fakeStore) RemoveRoute(_ context.Context, r store.Route) error {
	return s.write(fmt.Sprintf("remove %s %d", r.GatewayID, r.Epoch))
}

// Route writes keep their order through failures; a detach whose attach
// was never tried cancels it, one whose attach was tried is written.
func TestRouteWriterOrder(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{fail: 2, writes: make(chan string, 10)}
	w := newRouteWriter(fs, "gw-a", time.Now, discard())
	w.attached(Session{DeviceID: device, Epoch: 1})
	w.attached(Session{DeviceID: device, Epoch: 2})
	w.detached(Session{DeviceID: device, Epoch: 2})
	w.attached(Session{DeviceID: device, Epoch: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	next := func() string {
		t.Helper()
		select {
		case got := <-fs.writes:
			return got
		case <-time.After(20 * time.Second):
			t.Fatal("no route write within 20 s")
			return ""
		}
	}
	for _, want := range []string{"add gw-a 1", "add gw-a 3"} {
		if got := next(); got != want {
			t.Fatalf("route write %q, want %q", got, want)
		}
	}
	w.detached(Session{DeviceID: device, Epoch: 1})
	if got := next(); got != "remove gw-a 1" {
		t.Fatalf("route write %q, want the removal of epoch 1", got)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
