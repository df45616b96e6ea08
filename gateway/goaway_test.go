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
	rg := startGateway(t, dir, "127.0.0.1:0", nil)
	addr := rg.g.Addresses()[0]
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

// TestRefusedAfterGoAwayComesBackSoon: a node told by a GoAway to come
// back, and refused on its return (the next gateway's handshake slots are
// full), waits for its next attempt no longer than half the window each
// time, not for a backoff that doubles with each refusal and would have it
// wait up to 8 s and more by its fifth.
func TestRefusedAfterGoAwayComesBackSoon(t *testing.T) {
	const (
		refusals = 7
		// The node's wait under a GoAway's proof is at most half the
		// window, here the least one.
		maxWait = 1*time.Second + 100*time.Millisecond
	)
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	addr := rg.g.Addresses()[0]
	a := pairedAgent(t, rg, "refused", nil, 0)
	defer runAgent(a)()
	waitStatus(t, a, "connected over QUIC", func(s node.Status) bool {
		return s.State == node.StateConnected && s.Transport == wire.TransportQUIC
	})
	rg.stop()
	if w := carrier.ReconnectWindow(1); w != 2*time.Second {
		t.Fatalf("the window for one node is %v; this test assumes 2 s", w)
	}

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
