package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testaddr"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
)

// TestGoAwayOnStop: stopping a gateway with nodes connected tells each of
// them to come back within a window (GoAway) and returns before that
// window is over, so the old gateway is gone before the nodes return;
// every node waits for the restart as told rather than as after a failure,
// and is back on QUIC once a gateway runs again on the same directory and
// address.
func TestGoAwayOnStop(t *testing.T) {
	const nodes = 8
	dir := t.TempDir()
	addr := testaddr.Restartable(t)
	rg := startGateway(t, dir, addr, nil)
	agents := make([]*node.Agent, nodes)
	logs := make([]*syncbuf.Buffer, nodes)
	for i := range agents {
		logs[i] = &syncbuf.Buffer{}
		logTo := func(c *node.Config) { c.Logger = slog.New(slog.NewTextHandler(logs[i], nil)) }
		agents[i] = pairedAgent(t, rg, fmt.Sprintf("node-%d", i), []capability.Capability{echoCapability}, 0, logTo)
		defer runAgent(agents[i])()
	}
	onQUIC := func(since time.Time) func(node.Status) bool {
		return func(s node.Status) bool {
			return s.State == node.StateConnected && s.Transport == wire.TransportQUIC && s.ConnectedSince.After(since)
		}
	}
	for _, a := range agents {
		waitStatus(t, a, "connected over QUIC", onQUIC(time.Time{}))
	}

	stopped := time.Now()
	rg.stop()
	if took, window := time.Since(stopped), carrier.ReconnectWindow(nodes); took >= window {
		t.Errorf("the gateway took %v to stop, not less than the window of %v its nodes were given", took, window)
	}
	for _, a := range agents {
		waitStatus(t, a, "offline", func(s node.Status) bool { return s.State == node.StateOffline })
	}

	next := startGateway(t, dir, addr, nil)
	defer next.stop()
	for _, a := range agents {
		waitStatus(t, a, "back on QUIC", onQUIC(stopped))
	}
	for i, a := range agents {
		if !strings.Contains(logs[i].String(), "gateway restarting, reconnecting in") {
			t.Errorf("node %s did not wait for the gateway's restart as told (GoAway); status %+v; its log:\n%s", a.Status().DeviceName, a.Status(), logs[i])
		}
	}
}

// stopAfterGoAway connects a paired node over QUIC to a gateway on an
// address of its own, stops the gateway (a GoAway with the least window,
// 2 s) and returns the node and the address, free now.
func stopAfterGoAway(t *testing.T, name string) (*node.Agent, string) {
	t.Helper()
	addr := testaddr.Restartable(t)
	rg := startGateway(t, t.TempDir(), addr, nil)
	a := pairedAgent(t, rg, name, nil, 0)
	stop := runAgent(a)
	t.Cleanup(func() { _ = stop() })
	waitStatus(t, a, "connected over QUIC", func(s node.Status) bool {
		return s.State == node.StateConnected && s.Transport == wire.TransportQUIC
	})
	if w := carrier.ReconnectWindow(1); w != 2*time.Second {
		t.Fatalf("the window for one node is %v; this test assumes 2 s", w)
	}
	rg.stop()
	return a, addr
}

// TestRefusedAfterGoAwayComesBackSoon: a node told by a GoAway to come
// back, and refused on its return (the next gateway's handshake slots are
// full), waits for its next attempt no longer than half the window each
// time, also past the window the GoAway asked for, not for a backoff
// that doubles with each refusal and would have it wait 8 s and more by
// its fifth.
func TestRefusedAfterGoAwayComesBackSoon(t *testing.T) {
	t.Parallel()
	const (
		refusals = 7
		// The node's wait under a GoAway's proof is at most half the
		// window, here the least one.
		maxWait = 1*time.Second + 100*time.Millisecond
	)
	a, addr := stopAfterGoAway(t, "refused")

	// What takes the gateway's address refuses every connection at its
	// first packet, as quic-go does when a ConnContext fails.
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp, ConnContext: func(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
		return ctx, errors.New("no handshake slot")
	}}
	defer tr.Close()
	ca := testpki.NewCA(t, "refusing")
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{*testpki.ServerCert(t, ca)}, NextProtos: []string{wire.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	ctx, cancel := context.WithTimeout(t.Context(), refusals*(maxWait+time.Second))
	defer cancel()
	seen := map[time.Time]bool{}
	for st := range a.Watch(ctx) {
		if st.Transport == wire.TransportGRPC {
			t.Fatalf("the refused node moved to gRPC: %+v", st)
		}
		if st.State != node.StateOffline || st.RetryAt.IsZero() || seen[st.RetryAt] || !strings.Contains(st.LastError, "refused") {
			continue
		}
		seen[st.RetryAt] = true
		if wait := time.Until(st.RetryAt); wait > maxWait {
			t.Errorf("refusal %d: the node waits %v for its next attempt, more than %v", len(seen), wait, maxWait)
		}
		if len(seen) == refusals {
			return
		}
	}
	t.Fatalf("%d of %d refusals seen after the GoAway; status %+v", len(seen), refusals, a.Status())
}

// TestSilentAfterGoAwayBacksOff: a gateway that said it would restart
// and then does not answer at all (nothing listens on its address) may
// not be coming back; once the GoAway's window is over, the node
// waits its growing backoff, as offline and retrying, instead of dialling
// again within half a second or so for the rest of the GoAway's proof.
func TestSilentAfterGoAwayBacksOff(t *testing.T) {
	t.Parallel()
	// The longest wait while retrying soon: half the window, 1 s.
	const fastWait = 1*time.Second + 100*time.Millisecond
	a, _ := stopAfterGoAway(t, "silent")
	// The backoff (1, 2, 4, 8 s, ±20 %, less the 3 s each attempt waits
	// for an answer) has the fourth attempt or so wait longer than that;
	// the proof lasts a minute more than the window.
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	for st := range a.Watch(ctx) {
		if st.Transport == wire.TransportGRPC {
			t.Fatalf("the node left QUIC under the GoAway's proof: %+v", st)
		}
		// The GoAway's own wait (up to the window) does not count.
		if st.State == node.StateOffline && !strings.Contains(st.LastError, "restarting") && time.Until(st.RetryAt) > fastWait {
			return
		}
	}
	t.Fatalf("no wait longer than %v 40 s after the GoAway; status %+v", fastWait, a.Status())
}
