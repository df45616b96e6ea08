package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/cluster"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testnetns"
	"github.com/palyra/palyra-go/internal/testpg"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/quiccarrier"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
	peerv1 "github.com/palyra/palyra-go/proto/peer/v1"
)

// peerLease is the gateways' lease in these tests: short, so that a dead
// gateway's routes stop counting soon.
const peerLease = 3 * time.Second

// endpoint is a gateway's TCP and UDP sockets on one loopback port, bound
// before the gateway starts so that every gateway can advertise them all.
type endpoint struct {
	tcp  net.Listener
	udp  net.PacketConn
	addr string
}

func listenEndpoint(t testing.TB) endpoint {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	udp, err := net.ListenPacket("udp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	return endpoint{tcp: tcp, udp: udp, addr: tcp.Addr().String()}
}

// startPeer starts gateway id on db at ep, advertising ep's address to
// nodes (they learn the other gateways' from it).
func startPeer(t testing.TB, db testpg.Database, id string, ep endpoint) *runningGateway {
	t.Helper()
	return startGateway(t, t.TempDir(), "", nil, func(c *gateway.Config) {
		c.Database, c.GatewayID, c.PeerLeaseTTL = db.URL, id, peerLease
		c.TCPListener, c.PacketConn, c.Advertise = ep.tcp, ep.udp, []string{ep.addr}
		c.MetricsListen = "127.0.0.1:0"
	})
}

// startThreePeers starts gw-a, gw-b and gw-c on db, each on an endpoint
// of its own, all three listening before the first gateway starts.
func startThreePeers(t testing.TB, db testpg.Database) (a, b, c *runningGateway) {
	t.Helper()
	epA, epB, epC := listenEndpoint(t), listenEndpoint(t), listenEndpoint(t)
	return startPeer(t, db, "gw-a", epA), startPeer(t, db, "gw-b", epB), startPeer(t, db, "gw-c", epC)
}

// waitHeld polls rg's node listing, bounded, until the node is online
// through gateway holder, and checks it is listed once.
func waitHeld(t testing.TB, rg *runningGateway, deviceID, holder string) {
	t.Helper()
	waitHeldBy(t, rg, deviceID, holder)
}

// waitHeldBy is waitHeld for a node that may be held by any of holders;
// it returns the one that holds it.
func waitHeldBy(t testing.TB, rg *runningGateway, deviceID string, holders ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last []*adminv1.Node
	for time.Now().Before(deadline) {
		resp, err := rg.admin.ListNodes(t.Context(), &adminv1.ListNodesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Nodes
		seen := 0
		for _, n := range resp.Nodes {
			if n.DeviceId == deviceID {
				seen++
				if n.Online && slices.Contains(holders, n.Gateway) {
					if seen != 1 {
						t.Fatalf("node %s listed %d times: %v", deviceID, seen, resp.Nodes)
					}
					return n.Gateway
				}
			}
		}
		<-tick.C
	}
	t.Fatalf("gateway %s never listed node %s online through one of %v; last listing %v", rg.g.GatewayID(), deviceID, holders, last)
	return ""
}

// keepPairingGateway reopens, with cfg, the agent paired in
// cfg.ConfigDir knowing the first of its gateway addresses only: that of
// the gateway it paired through, which names its own first. Like a node
// paired while that gateway was alone, it connects there (not to a
// gateway drawn at random), as tests of several gateways that say which
// holds the node expect, and learns the others from its Welcome. With
// one address, it returns a.
func keepPairingGateway(tb testing.TB, a *node.Agent, cfg node.Config) *node.Agent {
	tb.Helper()
	conf, err := node.ReadConfig(cfg.ConfigDir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(conf.Gateways) < 2 {
		return a
	}
	conf.Gateways = conf.Gateways[:1]
	raw, err := json.Marshal(conf)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.ConfigDir, node.ConfigFile), raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	if a, err = node.New(cfg); err != nil {
		tb.Fatal(err)
	}
	return a
}

// sameAddresses reports whether a and b name the same addresses, each
// once, in any order.
func sameAddresses(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A node paired with A while A was alone knows A's address only. B and C
// join; A learns where nodes reach them, its pairing links name all three
// (its own first), and the node, connecting to A, keeps the three
// addresses A's Welcome named, in node.json too.
func TestWelcomeNamesEveryGateway(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	epA, epB, epC := listenEndpoint(t), listenEndpoint(t), listenEndpoint(t)
	a := startPeer(t, db, "gw-a", epA)
	var dir string
	laptop := pairedAgent(t, a, "laptop", nil, 0, func(c *node.Config) { dir = c.ConfigDir })
	if got := laptop.Status().Gateways; !slices.Equal(got, []string{epA.addr}) {
		t.Fatalf("paired with A alone, the node has the addresses %v, want A's only", got)
	}

	startPeer(t, db, "gw-b", epB)
	startPeer(t, db, "gw-c", epC)
	all := []string{epA.addr, epB.addr, epC.addr}
	waitUntil(t, 20*time.Second, "A reading where nodes reach B and C", func() bool { return slices.Equal(a.g.NodeAddresses(), all) })
	link, err := pairing.ParseLink(mint(t, a, true).Link, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(link.Gateways, all) {
		t.Errorf("A's pairing link names %v, want %v", link.Gateways, all)
	}

	stop := runAgent(laptop)
	defer stop()
	waitState(t, laptop, node.StateConnected)
	id := laptop.Status().DeviceID
	waitHeld(t, a, id, "gw-a")
	st := waitStatus(t, laptop, "keeping the addresses of A's Welcome", func(st node.Status) bool { return sameAddresses(st.Gateways, all) })
	conf, err := node.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAddresses(conf.Gateways, all) {
		t.Fatalf("node.json names %v, want %v (the status says %v)", conf.Gateways, all, st.Gateways)
	}
}

// A gateway alone on SQLite names its own addresses, as it always did:
// its nodes' stored addresses stay as pairing wrote them, and node.json
// is not written again, however often they connect.
func TestSingleGatewayAddressesUnchanged(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	if got, want := rg.g.NodeAddresses(), rg.g.Addresses(); !slices.Equal(got, want) {
		t.Fatalf("a gateway alone names %v to nodes, want its addresses %v", got, want)
	}
	var dir string
	laptop := pairedAgent(t, rg, "laptop", nil, 0, func(c *node.Config) { dir = c.ConfigDir })
	path := filepath.Join(dir, node.ConfigFile)
	paired, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	id := laptop.Status().DeviceID
	for range 2 {
		stop := runAgent(laptop)
		waitOnline(t, rg, id, true)
		// Answered: the session serves, so its Welcome has been read.
		resp := invokeAdmin(t, rg, id, "system.info", "", 0)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if !resp.Ok {
			t.Fatalf("system.info: %s: %s", resp.ErrorCode, resp.ErrorMessage)
		}
		waitOnline(t, rg, id, false)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	now, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || string(now) != string(paired) {
		t.Fatalf("node.json was written again:\n%s\nwas\n%s", now, paired)
	}
	if got := laptop.Status().Gateways; !slices.Equal(got, rg.g.Addresses()) {
		t.Fatalf("the node has the addresses %v, want the gateway's %v", got, rg.g.Addresses())
	}
}

// Three gateways on one database: a node connected to B is invoked
// through A and through C, each call forwarded to B; B refuses nothing
// and the node sees each call once.
func TestInvokeThroughAnyGateway(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	a, b, c := startThreePeers(t, db)

	laptop := pairedAgent(t, b, "laptop", nil, 0)
	stop := runAgent(laptop)
	defer stop()
	waitState(t, laptop, node.StateConnected)
	id := laptop.Status().DeviceID
	for _, rg := range []*runningGateway{a, b, c} {
		waitHeld(t, rg, id, "gw-b")
	}
	for _, rg := range []*runningGateway{a, c, a} {
		resp := invokeAdmin(t, rg, id, "system.info", "", 0)
		if !resp.Ok {
			t.Fatalf("system.info through %s: %s: %s", rg.g.GatewayID(), resp.ErrorCode, resp.ErrorMessage)
		}
	}
	if n := metricValue(t, metricsText(t, a), `palyra_forwarded_calls_total{outcome="ok"}`); n != 2 {
		t.Errorf("gateway A forwarded %v calls, want 2", n)
	}
	if n := metricValue(t, metricsText(t, b), `palyra_peer_connections`); n != 2 {
		t.Errorf("gateway B has %v peer connections, want 2 (from A and C, reused)", n)
	}
	// A capability the node does not offer is refused by B, as one gateway would.
	if resp := invokeAdmin(t, a, id, "no.such", "", 0); resp.Ok || resp.ErrorCode != "unknown_capability" {
		t.Fatalf("an unknown capability through A: %+v", resp)
	}
}

// dialAs opens a QUIC connection to ep under alpn, presenting cert, and
// reads from a stream it opens: TLS 1.3 shows a refused client certificate
// only at first use. It returns what the read said.
func dialAs(t *testing.T, ep endpoint, alpn string, cert tls.Certificate, call []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, ep.addr, &tls.Config{
		Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn},
		InsecureSkipVerify: true, // the test looks at the gateway's answer, not its certificate
	}, &quic.Config{})
	if err != nil {
		return err
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	if _, err := str.Write(call); err != nil {
		return err
	}
	var reply peerv1.Reply
	if err := wire.ReadFrame(str, &reply); err != nil {
		return err
	}
	if r := reply.GetRefusal(); r != nil {
		return fmt.Errorf("refused: %s: %s", r.GetReason(), r.GetMessage())
	}
	return fmt.Errorf("unexpected reply %v", &reply)
}

// The peer protocol takes gateway certificates of the shared CA only: a
// device's certificate is refused there, and a gateway's on the node
// protocol; a gateway's is served.
func TestPeerCertificateRoles(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	ep := listenEndpoint(t)
	startPeer(t, db, "gw-a", ep)
	s, err := store.OpenPostgres(t.Context(), db.URL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := s.LoadCA(t.Context())
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := identity.ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	key, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := key.CreateCSR(rand.Reader, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	deviceCert := tls.Certificate{Certificate: [][]byte{dev.Raw}, PrivateKey: key.Signer(), Leaf: dev}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := ca.IssueGatewayCertificate(pub, "gw-x", identity.IssueOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	gatewayCert := tls.Certificate{Certificate: [][]byte{gw.Raw}, PrivateKey: priv, Leaf: gw}
	badCall, err := wire.AppendFrame(nil, &peerv1.Call{DeviceId: "not a device"})
	if err != nil {
		t.Fatal(err)
	}

	if err := dialAs(t, ep, cluster.ALPN, deviceCert, badCall); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("a device certificate as a peer: %v, want a bad certificate alert", err)
	}
	if err := dialAs(t, ep, wire.ALPN, gatewayCert, badCall); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("a gateway certificate as a node: %v, want a bad certificate alert", err)
	}
	if err := dialAs(t, ep, cluster.ALPN, gatewayCert, badCall); err == nil || !strings.Contains(err.Error(), "REASON_MALFORMED") {
		t.Errorf("a gateway certificate as a peer: %v, want its (malformed) call answered", err)
	}
}

// BenchmarkForwardedInvoke measures a call forwarded from gateway A to
// gateway B, which holds the node, beside the same call made on B
// directly, alternating in one run (both through Gateway.Invoke in the
// gateways' process, on one PostgreSQL database): p50 and p99 of each, and
// their ratios. The goal is a forwarded call within twice a direct one.
func BenchmarkForwardedInvoke(b *testing.B) {
	db := testpg.New(b)
	epA, epB := listenEndpoint(b), listenEndpoint(b)
	a := startPeer(b, db, "gw-a", epA)
	gb := startPeer(b, db, "gw-b", epB)
	node := pairedAgent(b, gb, "bench", []capability.Capability{echoCapability}, 0)
	stop := runAgent(node)
	defer stop()
	id := node.Status().DeviceID
	waitHeld(b, a, id, "gw-b")
	inv := gateway.Invocation{DeviceID: id, Capability: "bench.echo", Args: []byte(`{"n":1}`)}
	call := func(rg *runningGateway) time.Duration {
		start := time.Now()
		if resp, err := rg.g.Invoke(b.Context(), inv); err != nil || !resp.OK {
			b.Fatal(err, resp)
		}
		return time.Since(start)
	}
	var direct, forwarded []time.Duration
	for b.Loop() {
		direct = append(direct, call(gb))
		forwarded = append(forwarded, call(a))
	}
	d, f := spreadOf(direct), spreadOf(forwarded)
	b.ReportMetric(float64(d.p50.Microseconds()), "direct-p50-us")
	b.ReportMetric(float64(d.p99.Microseconds()), "direct-p99-us")
	b.ReportMetric(float64(f.p50.Microseconds()), "forwarded-p50-us")
	b.ReportMetric(float64(f.p99.Microseconds()), "forwarded-p99-us")
	b.ReportMetric(float64(f.p50)/float64(d.p50), "ratio-p50")
	b.ReportMetric(float64(f.p99)/float64(d.p99), "ratio-p99")
}

// A call queued through A for a node offline everywhere is delivered by
// B, where the node comes back, and A's caller gets its result.
func TestQueuedCallDeliveredByAnotherGateway(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	epA, epB := listenEndpoint(t), listenEndpoint(t)
	a := startPeer(t, db, "gw-a", epA)
	b := startPeer(t, db, "gw-b", epB)
	laptop := pairedAgent(t, b, "laptop", nil, 0)
	id := laptop.Status().DeviceID
	_, answered := queueFor(t, a, id, "system.info", "")
	stop := runAgent(laptop)
	defer stop()
	resp := testwait.Recv(t, answered, 30*time.Second, "the queued call's answer at A")
	if !resp.Ok || !resp.Queued {
		t.Fatalf("the queued call: %+v", resp)
	}
	waitHeld(t, a, id, "gw-b")
}

// A wait for a queued call's outcome on a gateway that neither queued
// nor delivered it ends when another gateway records the result, not at
// the wait's end.
func TestCallWaitOnAThirdGateway(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	a, b, c := startThreePeers(t, db)
	laptop := pairedAgent(t, b, "laptop", nil, 0)
	id := laptop.Status().DeviceID
	requestID, answered := queueFor(t, a, id, "system.info", "")
	got := make(chan *adminv1.Call, 1)
	go func() {
		call, err := c.admin.GetCall(context.Background(), &adminv1.GetCallRequest{RequestId: requestID, WaitMs: 120_000})
		if err != nil {
			t.Error(err)
		}
		got <- call
	}()
	stop := runAgent(laptop)
	defer stop()
	testwait.Recv(t, answered, 30*time.Second, "the queued call's answer at A")
	if call := testwait.Recv(t, got, 30*time.Second, "the wait at C"); call.GetState() != adminv1.Call_STATE_DONE {
		t.Fatalf("the call as C sees it: %v", call)
	}
}

// A node that fell back to gRPC on B, because its UDP does not get
// through, is invoked through A like any other: B runs the forwarded call
// on the gRPC session.
func TestForwardToANodeOnGRPC(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	db := testpg.New(t)
	epA, epB := listenEndpoint(t), listenEndpoint(t)
	a := startPeer(t, db, "gw-a", epA)
	b := startPeer(t, db, "gw-b", epB)
	// The node's QUIC socket is known, so only its packets are dropped:
	// the gateways' QUIC between themselves still works.
	tr, err := quiccarrier.NewTransport("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	testnetns.NFT(t, fmt.Sprintf(`table inet node_udp {
	chain input {
		type filter hook input priority 0; policy accept;
		udp sport %d drop
	}
}
`, tr.LocalAddr().(*net.UDPAddr).Port))
	laptop := pairedAgent(t, b, "laptop", nil, 0, func(c *node.Config) { c.QUICTransport = tr })
	stop := runAgent(laptop)
	defer stop()
	if st := waitState(t, laptop, node.StateConnected); st.Transport != wire.TransportGRPC {
		t.Fatalf("the node is connected over %s, not gRPC", st.Transport)
	}
	id := laptop.Status().DeviceID
	waitHeld(t, a, id, "gw-b")
	resp := invokeAdmin(t, a, id, "system.info", "", 0)
	if !resp.Ok {
		t.Fatalf("system.info through A: %s: %s", resp.ErrorCode, resp.ErrorMessage)
	}
	if n := metricValue(t, metricsText(t, a), `palyra_forwarded_calls_total{outcome="ok"}`); n != 1 {
		t.Errorf("gateway A forwarded %v calls, want 1", n)
	}
}
