package gateway_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testaddr"
	"github.com/palyra/palyra-go/internal/testlogind"
	"github.com/palyra/palyra-go/internal/testnetns"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/carrier"
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

// All packets to and from the gateway dropped for outageLength
// mid-session: the node leaves "connected" without a word from the
// gateway, the gateway shows it offline at its lease end, and both come
// back when the path does.
func TestGatewayVanishes(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, defaultLease)
	a := pairedAgent(t, rg, "laptop", nil, 0)
	stop := runAgent(a)
	defer stop()
	waitState(t, a, node.StateConnected)
	id := a.Status().DeviceID
	outage := time.After(outageLength)
	testnetns.DropAll(t, gatewayPort(t, rg))
	waitFor(t, a, 30*time.Second, "went offline", func(s node.Status) bool { return s.State != node.StateConnected })
	<-outage
	testnetns.Allow(t)
	back := time.Now()
	up := waitFor(t, a, 60*time.Second, "connected again", func(s node.Status) bool { return s.State == node.StateConnected })
	t.Logf("connected again %v after the path came back", up.ConnectedSince.Sub(back))
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

// The loopback address the gateway serves on is removed: the node goes
// offline and, waiting out a long backoff, redials as soon as the address
// is back, well before its retry time.
func TestAddressRemovedAndAdded(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	_, a, _ := gatewayAndAgent(t, t.TempDir())
	waitState(t, a, node.StateConnected)
	testnetns.Run(t, "ip", "addr", "del", "127.0.0.1/8", "dev", "lo")
	// Failed attempts double the backoff's ceiling: wait for a retry
	// more than 5 s away.
	st := waitFor(t, a, 90*time.Second, "was waiting out a long backoff", func(s node.Status) bool {
		return s.State == node.StateOffline && time.Until(s.RetryAt) > 5*time.Second
	})
	testnetns.Run(t, "ip", "addr", "add", "127.0.0.1/8", "dev", "lo")
	up := waitFor(t, a, 60*time.Second, "connected again", func(s node.Status) bool { return s.State == node.StateConnected })
	if !up.ConnectedSince.Before(st.RetryAt) {
		t.Errorf("reconnected at %v, not before the backoff's retry at %v", up.ConnectedSince, st.RetryAt)
	}
}

// sleepingLaptop is a node on a gateway with the default lease (so the
// silence limit, not the lease, decides when a dead session is noticed),
// with a stand-in logind to put it to sleep and wake it.
type sleepingLaptop struct {
	dir, addr string
	port      int
	rg        *runningGateway
	agent     *node.Agent
	logind    *testlogind.Logind
}

func newSleepingLaptop(tb testing.TB) *sleepingLaptop {
	tb.Helper()
	l := &sleepingLaptop{dir: tb.TempDir(), logind: testlogind.Start(tb)}
	l.addr = testaddr.Restartable(tb)
	l.rg = startGateway(tb, l.dir, l.addr, nil, defaultLease)
	l.port = gatewayPort(tb, l.rg)
	l.agent = pairedAgent(tb, l.rg, "laptop", nil, 0)
	stop := runAgent(l.agent)
	tb.Cleanup(func() { _ = stop() })
	return l
}

func defaultLease(c *gateway.Config) { c.LeaseTTL = 30 * time.Second }

// sleepThroughRestart connects, sleeps, and while asleep has the gateway
// restarted with its goodbye lost (every packet to and from it dropped), so the
// node's session still looks alive. It returns the session's start and
// when the drop began.
func (l *sleepingLaptop) sleepThroughRestart(tb testing.TB) (connectedSince, droppedAt time.Time) {
	tb.Helper()
	before := waitFor(tb, l.agent, time.Minute, "connected", func(s node.Status) bool { return s.State == node.StateConnected })
	l.logind.Sleep(tb)
	droppedAt = time.Now()
	testnetns.DropAll(tb, l.port)
	l.rg.stop()
	l.rg = startGateway(tb, l.dir, l.addr, nil, defaultLease)
	testnetns.Allow(tb)
	return before.ConnectedSince, droppedAt
}

// Asleep, the gateway restarted without the node hearing of it; on wake
// the node drops the session that looks alive and is connected to the new
// gateway at once, instead of waiting for the silence to tell.
func TestWakeRedials(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	l := newSleepingLaptop(t)
	since, droppedAt := l.sleepThroughRestart(t)
	if st := l.agent.Status(); st.State != node.StateConnected || !st.ConnectedSince.Equal(since) {
		t.Fatalf("the node noticed the restart before the wake: %+v", st)
	}
	l.logind.Wake(t)
	up := waitFor(t, l.agent, time.Minute, "connected again", func(s node.Status) bool {
		return s.State == node.StateConnected && s.ConnectedSince.After(since)
	})
	// The gateway answered a renewal at most SilenceLimit/3 before the
	// drop, so the silence could end the session no sooner than this.
	if silenceEnd := droppedAt.Add(carrier.SilenceLimit * 2 / 3); !up.ConnectedSince.Before(silenceEnd) {
		t.Errorf("reconnected at %v, not before the silence limit could have ended the session (%v): the wake did nothing", up.ConnectedSince, silenceEnd)
	}
	waitOnline(t, l.rg, up.DeviceID, true)
}

// BenchmarkWakeToConnected measures, over at least five runs, the time
// from logind's wake signal to the node shown connected, after a sleep
// through which the gateway restarted (TestWakeRedials).
func BenchmarkWakeToConnected(b *testing.B) {
	if !testnetns.Enter(b) {
		return
	}
	l := newSleepingLaptop(b)
	measureRuns(b, func() time.Duration {
		since, _ := l.sleepThroughRestart(b)
		start := time.Now()
		l.logind.Wake(b)
		up := waitFor(b, l.agent, time.Minute, "connected again", func(s node.Status) bool {
			return s.State == node.StateConnected && s.ConnectedSince.After(since)
		})
		return up.ConnectedSince.Sub(start)
	})
}

// BenchmarkNetworkChangeToConnected measures, over at least five runs,
// the time from the gateway's address coming back (after it was removed
// and the node went offline) to the node shown connected.
func BenchmarkNetworkChangeToConnected(b *testing.B) {
	if !testnetns.Enter(b) {
		return
	}
	rg := startGateway(b, b.TempDir(), "127.0.0.1:0", nil)
	a := pairedAgent(b, rg, "laptop", nil, 0)
	stop := runAgent(a)
	defer stop()
	measureRuns(b, func() time.Duration {
		waitFor(b, a, time.Minute, "connected", func(s node.Status) bool { return s.State == node.StateConnected })
		testnetns.Run(b, "ip", "addr", "del", "127.0.0.1/8", "dev", "lo")
		waitFor(b, a, time.Minute, "went offline", func(s node.Status) bool { return s.State == node.StateOffline })
		start := time.Now()
		testnetns.Run(b, "ip", "addr", "add", "127.0.0.1/8", "dev", "lo")
		up := waitFor(b, a, time.Minute, "connected again", func(s node.Status) bool { return s.State == node.StateConnected })
		return up.ConnectedSince.Sub(start)
	})
}

// BenchmarkNoticeDeadGateway measures how long a node, with the default
// lease (30 s, so carrier.SilenceLimit decides), takes to leave
// "connected" once every packet to and from the gateway is dropped: on
// QUIC, and on gRPC over TCP with UDP blocked.
func BenchmarkNoticeDeadGateway(b *testing.B) {
	if !testnetns.Enter(b) {
		return
	}
	for _, transport := range []string{wire.TransportQUIC, wire.TransportGRPC} {
		b.Run(transport, func(b *testing.B) {
			rg := startGateway(b, b.TempDir(), "127.0.0.1:0", nil, defaultLease)
			port := gatewayPort(b, rg)
			a := pairedAgent(b, rg, "laptop", nil, 0)
			stop := runAgent(a)
			defer stop()
			measureRuns(b, func() time.Duration {
				testnetns.Allow(b)
				if transport == wire.TransportGRPC {
					testnetns.DropUDP(b, port)
				}
				waitFor(b, a, time.Minute, "connected over "+transport, func(s node.Status) bool {
					return s.State == node.StateConnected && s.Transport == transport
				})
				start := time.Now()
				testnetns.DropAll(b, port)
				waitFor(b, a, time.Minute, "went offline", func(s node.Status) bool { return s.State != node.StateConnected })
				return time.Since(start)
			})
		})
	}
}

// BenchmarkPathReturns measures, over at least five runs, the time from
// the path to the gateway coming back after outageLength of every packet
// dropped mid-session to the node shown connected again (as in
// TestGatewayVanishes). Each run is a node process of its own, so that
// one outage's backoff does not carry into the next.
func BenchmarkPathReturns(b *testing.B) {
	if !testnetns.Enter(b) {
		return
	}
	rg := startGateway(b, b.TempDir(), "127.0.0.1:0", nil, defaultLease)
	port := gatewayPort(b, rg)
	a := pairedAgent(b, rg, "laptop", nil, 0)
	measureRuns(b, func() time.Duration {
		stop := runAgent(a)
		defer stop()
		waitFor(b, a, time.Minute, "connected", func(s node.Status) bool { return s.State == node.StateConnected })
		outage := time.After(outageLength)
		testnetns.DropAll(b, port)
		waitFor(b, a, time.Minute, "went offline", func(s node.Status) bool { return s.State != node.StateConnected })
		<-outage
		testnetns.Allow(b)
		back := time.Now()
		up := waitFor(b, a, time.Minute, "connected again", func(s node.Status) bool { return s.State == node.StateConnected })
		return up.ConnectedSince.Sub(back)
	})
}

// outageLength is how long the path drops everything in the vanishing
// gateway's tests: past the silence limit, so the node is offline and
// retrying when the path returns.
const outageLength = 20 * time.Second
