package gateway_test

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testnetns"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
)

// gatewayAndAgent starts a gateway (lease TTL 3 s) on a port of its own in
// dir and runs a node paired with it until the test ends.
func gatewayAndAgent(t *testing.T, dir string) (*runningGateway, *node.Agent, int) {
	t.Helper()
	rg := startGateway(t, dir, "127.0.0.1:0", nil)
	addr := rg.g.Addresses()[0]
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	a := newAgent(t, "laptop")
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	stop := runAgent(a)
	t.Cleanup(func() { _ = stop() })
	return rg, a, port
}

// All packets to the gateway dropped mid-session: the node leaves
// "connected" without a word from the gateway, the gateway shows it
// offline at its lease end, and both come back when the path does.
func TestGatewayVanishes(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	rg, a, port := gatewayAndAgent(t, t.TempDir())
	waitState(t, a, node.StateConnected)
	id := a.Status().DeviceID
	testnetns.DropUDP(t, port)
	testnetns.DropTCP(t, port)
	waitFor(t, a, 30*time.Second, "went offline", func(s node.Status) bool { return s.State != node.StateConnected })
	waitOnline(t, rg, id, false)
	testnetns.Allow(t)
	waitFor(t, a, 60*time.Second, "connected again", func(s node.Status) bool { return s.State == node.StateConnected })
	waitOnline(t, rg, id, true)
}

// The same over the gRPC fallback: UDP dropped mid-session moves the node
// to gRPC over TCP, and a gateway that then goes silent on TCP too is
// noticed without a word from it (the lease keeper and gRPC's keepalive
// pings), and both sides come back when the path does.
func TestGatewayVanishesOverGRPC(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	rg, a, port := gatewayAndAgent(t, t.TempDir())
	waitState(t, a, node.StateConnected)
	id := a.Status().DeviceID
	testnetns.DropUDP(t, port)
	waitFor(t, a, 60*time.Second, "connected over gRPC", func(s node.Status) bool {
		return s.State == node.StateConnected && s.Transport == wire.TransportGRPC
	})
	testnetns.DropTCP(t, port)
	waitFor(t, a, 30*time.Second, "went offline", func(s node.Status) bool { return s.State != node.StateConnected })
	waitOnline(t, rg, id, false)
	testnetns.Allow(t)
	waitFor(t, a, 60*time.Second, "connected again", func(s node.Status) bool { return s.State == node.StateConnected })
	waitOnline(t, rg, id, true)
}

// An offline node waiting out a long backoff redials as soon as an
// address is added, well before its retry time.
func TestNetworkChangeRedials(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	dir := t.TempDir()
	rg, a, _ := gatewayAndAgent(t, dir)
	waitState(t, a, node.StateConnected)
	addr := rg.g.Addresses()[0]
	rg.stop()
	// Failed attempts double the backoff's ceiling: wait for a retry
	// more than 5 s away.
	st := waitFor(t, a, 90*time.Second, "was waiting out a long backoff", func(s node.Status) bool {
		return s.State == node.StateOffline && time.Until(s.RetryAt) > 5*time.Second
	})
	startGateway(t, dir, addr, nil)
	testnetns.Run(t, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
	up := waitFor(t, a, 60*time.Second, "connected again", func(s node.Status) bool { return s.State == node.StateConnected })
	if !up.ConnectedSince.Before(st.RetryAt) {
		t.Errorf("reconnected at %v, not before the backoff's retry at %v", up.ConnectedSince, st.RetryAt)
	}
}

// BenchmarkNoticeDeadGateway measures how long a node on QUIC, with the
// default lease (30 s, so carrier.SilenceLimit decides), takes to leave
// "connected" once every packet to the gateway is dropped.
func BenchmarkNoticeDeadGateway(b *testing.B) {
	if !testnetns.Enter(b) {
		return
	}
	rg := startGateway(b, b.TempDir(), "127.0.0.1:0", nil, func(c *gateway.Config) { c.LeaseTTL = 30 * time.Second })
	addr := rg.g.Addresses()[0]
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	a := agentIn(b, b.TempDir(), "laptop")
	if _, err := a.Pair(b.Context(), node.PairOptions{Gateway: addr, PIN: mint(b, rg, true).Pin}); err != nil {
		b.Fatal(err)
	}
	stop := runAgent(a)
	defer stop()
	const runs = 5
	var took []time.Duration
	for b.Loop() {
		for range runs {
			waitFor(b, a, time.Minute, "connected", func(s node.Status) bool { return s.State == node.StateConnected })
			start := time.Now()
			testnetns.DropUDP(b, port)
			testnetns.DropTCP(b, port)
			waitFor(b, a, time.Minute, "went offline", func(s node.Status) bool { return s.State != node.StateConnected })
			took = append(took, time.Since(start))
			testnetns.Allow(b)
		}
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[0]), "ms-min")
	b.ReportMetric(ms(took[len(took)/2]), "ms-median")
	b.ReportMetric(ms(took[len(took)-1]), "ms-max")
}
