package gateway_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testaddr"
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
