package gateway_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testsqlite"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
)

// statusLog records every status an agent goes through.
type statusLog struct {
	mu   sync.Mutex
	seen []node.Status
}

func watchStatuses(t *testing.T, a *node.Agent) *statusLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &statusLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range a.Watch(ctx) {
			l.mu.Lock()
			l.seen = append(l.seen, st)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *statusLog) all() []node.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]node.Status(nil), l.seen...)
}

// A store that cannot be written while a node registers (another process
// holds its write lock past the busy timeout) is answered "gateway busy,
// retry in N s": the node says so, waits that long and tries QUIC again,
// never falls back to gRPC for it nor calls its certificate bad, and
// registers once the store is free.
func TestStoreFailureAtRegistrationIsBusy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil)
	a := pairedAgent(t, rg, "patient", nil, 0)
	release := testsqlite.LockForWriting(t, filepath.Join(dir, gateway.StoreFile))
	log := watchStatuses(t, a)
	defer runAgent(a)()

	busy := regexp.MustCompile(`^gateway busy, retrying in (\d+) s$`)
	st := waitFor(t, a, 30*time.Second, "said the gateway is busy", func(s node.Status) bool {
		return s.State == node.StateOffline && busy.MatchString(s.LastError)
	})
	// The wait is the gateway's (2–10 s, with jitter), not the backoff's.
	if wait := time.Until(st.RetryAt); wait < time.Second || wait > 11*time.Second {
		t.Errorf("retry at %v, %v from now; want the gateway's 2–10 s", st.RetryAt, wait)
	}
	release()
	st = waitFor(t, a, 30*time.Second, "connected once the store was free", func(s node.Status) bool {
		return s.State == node.StateConnected
	})
	if st.Transport != wire.TransportQUIC {
		t.Errorf("connected over %q (%s), want QUIC", st.Transport, st.FallbackReason)
	}
	waitOnline(t, rg, st.DeviceID, true)
	for _, s := range log.all() {
		if s.Transport == wire.TransportGRPC {
			t.Errorf("the node fell back to gRPC for a busy gateway: %+v", s)
		}
		if strings.Contains(strings.ToLower(s.LastError), "certificate") {
			t.Errorf("the node blamed its certificate: %q", s.LastError)
		}
	}
}
