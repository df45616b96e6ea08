package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// invokeAdmin runs a capability through the admin API, as `palyra nodes
// invoke` does.
func invokeAdmin(t testing.TB, rg *runningGateway, id, capability, args string, queueTTL time.Duration) *adminv1.InvokeResponse {
	t.Helper()
	resp, err := rg.admin.Invoke(t.Context(), &adminv1.InvokeRequest{
		DeviceId:   id,
		Capability: capability,
		ArgsJson:   []byte(args),
		TimeoutMs:  (10 * time.Second).Milliseconds(),
		QueueTtlMs: queueTTL.Milliseconds(),
	})
	if err != nil {
		t.Fatalf("invoking %s: %v", capability, err)
	}
	return resp
}

// waitCapability polls the admin API until the gateway sees the node's
// capability enabled or not, bounded by a deadline.
func waitCapability(t *testing.T, rg *runningGateway, id, name string, enabled bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		d, err := rg.admin.DescribeNode(t.Context(), &adminv1.DeviceRequest{DeviceId: id})
		if err == nil {
			for _, c := range d.Capabilities {
				if c.GetName() == name && c.GetEnabled() == enabled && d.GetNode().GetOnline() {
					return
				}
			}
		}
		<-tick.C
	}
	t.Fatalf("gateway never saw %s enabled=%v on %s", name, enabled, id)
}

func TestInvokeCapabilities(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	a := newAgent(t, "sharer")
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	id := a.Status().DeviceID
	marks := filepath.Join(t.TempDir(), "marks")
	for _, c := range []node.SharingChange{
		{Action: "enable", Name: "shell.exec"},
		{Action: "consent", Name: "shell.exec", Value: "allow"},
		{Action: "allow-command", Value: "/bin/echo"},
		{Action: "allow-command", Value: "/bin/sh"},
	} {
		if err := a.ChangeSharing(c); err != nil {
			t.Fatal(err)
		}
	}
	stop := runAgent(a)
	defer func() { stop() }()
	waitState(t, a, node.StateConnected)
	waitCapability(t, rg, id, "system.info", true)

	// system.info brings the host's real data.
	resp := invokeAdmin(t, rg, id, "system.info", "", 0)
	if !resp.Ok {
		t.Fatalf("system.info failed: %s: %s", resp.ErrorCode, resp.ErrorMessage)
	}
	var info struct {
		Hostname string `json:"hostname"`
		NumCPU   int    `json:"num_cpu"`
	}
	if err := json.Unmarshal(resp.OutputJson, &info); err != nil {
		t.Fatal(err)
	}
	if host, _ := os.Hostname(); info.Hostname != host || info.NumCPU < 1 {
		t.Fatalf("system.info = %s; host is %s", resp.OutputJson, host)
	}
	if len(resp.RequestId) != 26 {
		t.Fatalf("request ID %q is not a ULID", resp.RequestId)
	}

	// Turned off on the node, the call is refused by the gateway itself
	// (its message names the node; the node's says "this node").
	if err := a.SetCapabilityEnabled("system.info", false); err != nil {
		t.Fatal(err)
	}
	waitCapability(t, rg, id, "system.info", false)
	resp = invokeAdmin(t, rg, id, "system.info", "", 0)
	if resp.Ok || resp.ErrorCode != "disabled" || !strings.Contains(resp.ErrorMessage, "on node "+id) {
		t.Fatalf("disabled system.info: %v", resp)
	}
	if err := a.SetCapabilityEnabled("system.info", true); err != nil {
		t.Fatal(err)
	}
	waitCapability(t, rg, id, "system.info", true)
	if resp = invokeAdmin(t, rg, id, "system.info", "", 0); !resp.Ok {
		t.Fatalf("re-enabled system.info: %v", resp)
	}

	// shell.exec runs what is allowed, without a shell, and nothing else.
	resp = invokeAdmin(t, rg, id, "shell.exec", `{"command":"/bin/echo","args":["hello","$HOME;"]}`, 0)
	if !resp.Ok || !strings.Contains(string(resp.OutputJson), `hello $HOME;\n`) {
		t.Fatalf("allowed shell.exec: %v", resp)
	}
	resp = invokeAdmin(t, rg, id, "shell.exec", `{"command":"/bin/cat","args":["/etc/hostname"]}`, 0)
	if resp.Ok || resp.ErrorCode != "not_allowed" {
		t.Fatalf("shell.exec of a program not allowed: %v", resp)
	}
	if resp = invokeAdmin(t, rg, id, "no.such", "", 0); resp.ErrorCode != "unknown_capability" {
		t.Fatalf("unknown capability: %v", resp)
	}

	// Offline: fail fast, or queue and deliver once on reconnect.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, rg, id, false)
	if resp = invokeAdmin(t, rg, id, "system.info", "", 0); resp.ErrorCode != "offline" {
		t.Fatalf("offline node: %v", resp)
	}
	queuedEvent := watchQueued(t, rg, id)
	queued := make(chan *adminv1.InvokeResponse, 1)
	go func() {
		r, err := rg.admin.Invoke(context.Background(), &adminv1.InvokeRequest{
			DeviceId:   id,
			Capability: "shell.exec",
			ArgsJson:   []byte(`{"command":"/bin/sh","args":["-c","echo run >> '` + marks + `'"]}`),
			TimeoutMs:  10_000,
			QueueTtlMs: 60_000,
		})
		if err != nil {
			r = &adminv1.InvokeResponse{ErrorMessage: err.Error()}
		}
		queued <- r
	}()
	var queuedID string
	select {
	case e := <-queuedEvent:
		queuedID = e.RequestId
	case <-time.After(20 * time.Second):
		t.Fatal("call never queued")
	}
	stop = runAgent(a)
	select {
	case resp = <-queued:
	case <-time.After(20 * time.Second):
		t.Fatal("queued call not delivered after reconnect")
	}
	if !resp.Ok || !resp.Queued || resp.RequestId != queuedID {
		t.Fatalf("queued call: %v", resp)
	}
	// Reconnecting again delivers nothing twice.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, rg, id, false)
	stop = runAgent(a)
	waitState(t, a, node.StateConnected)
	waitCapability(t, rg, id, "system.info", true)
	if resp = invokeAdmin(t, rg, id, "system.info", "", 0); !resp.Ok {
		t.Fatalf("after reconnect: %v", resp)
	}
	b, err := os.ReadFile(marks)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "run\n"); got != 1 {
		t.Fatalf("queued call ran %d times", got)
	}
}

// watchEvent returns a channel that gets the first event of the device the
// admin event stream shows from now on that match accepts.
func watchEvent(t *testing.T, rg *runningGateway, id string, match func(*adminv1.Event) bool) <-chan *adminv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	stream, err := rg.admin.WatchEvents(ctx, &adminv1.WatchEventsRequest{DeviceId: id})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is open once the gateway sends headers.
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	out := make(chan *adminv1.Event, 1)
	go func() {
		defer cancel()
		for {
			e, err := stream.Recv()
			if err != nil {
				return
			}
			if match(e) {
				out <- e
				return
			}
		}
	}()
	return out
}

// watchQueued returns a channel that gets the next call the gateway queues
// for the device.
func watchQueued(t *testing.T, rg *runningGateway, id string) <-chan *adminv1.Event {
	return watchEvent(t, rg, id, func(e *adminv1.Event) bool {
		return e.Kind == "invocation" && strings.HasPrefix(e.Message, "queued")
	})
}

// TestMetrics: the metrics endpoint counts pairings and invocations by
// outcome and the connected nodes.
func TestMetrics(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" })
	a := newAgent(t, "measured")
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	stop := runAgent(a)
	defer stop()
	id := a.Status().DeviceID
	waitCapability(t, rg, id, "system.info", true)
	invokeAdmin(t, rg, id, "system.info", "", 0)
	invokeAdmin(t, rg, id, "clipboard.read", "", 0) // off by default

	body := metricsText(t, rg)
	for _, want := range []string{
		`palyra_pairing_attempts_total{outcome="paired"} 1`,
		`palyra_invocations_total{outcome="ok"} 1`,
		`palyra_invocations_total{outcome="disabled"} 1`,
		`palyra_invocation_duration_seconds_count{transport="quic"} 2`,
		"palyra_connected_nodes 1",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// metricsText is what rg's metrics endpoint serves now.
func metricsText(t testing.TB, rg *runningGateway) string {
	t.Helper()
	// Run serves metrics shortly after it starts; poll for the address.
	var addr net.Addr
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for addr = rg.g.MetricsAddr(); addr == nil && time.Now().Before(deadline); addr = rg.g.MetricsAddr() {
		<-tick.C
	}
	if addr == nil {
		t.Fatal("metrics never served")
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// startUDPBlockedGateway starts a gateway whose QUIC listens on another
// port than the one it advertises: datagrams to the advertised one go
// nowhere, as behind a firewall that drops UDP, so nodes use gRPC.
func startUDPBlockedGateway(t testing.TB, options ...func(*gateway.Config)) *runningGateway {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	return startGateway(t, t.TempDir(), "", nil, append([]func(*gateway.Config){func(c *gateway.Config) {
		c.TCPListener, c.PacketConn = tcp, udp
		c.Advertise = []string{tcp.Addr().String()}
	}}, options...)...)
}

// TestGRPCFallback: where UDP does not get through, the node connects over
// gRPC on the same address, says so, is invoked the same way, and is cut
// off by revocation.
func TestGRPCFallback(t *testing.T) {
	t.Parallel()
	rg := startUDPBlockedGateway(t)
	a := newAgent(t, "firewalled")
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	id := a.Status().DeviceID
	stop := runAgent(a)
	defer stop()
	st := waitState(t, a, node.StateConnected)
	if st.Transport != wire.TransportGRPC || st.FallbackReason == "" {
		t.Fatalf("status does not say it fell back: %+v", st)
	}
	waitCapability(t, rg, id, "system.info", true)
	d, err := rg.admin.DescribeNode(t.Context(), &adminv1.DeviceRequest{DeviceId: id})
	if err != nil || d.GetNode().GetTransport() != "grpc" {
		t.Fatalf("describe: %v %v", d, err)
	}
	resp := invokeAdmin(t, rg, id, "system.info", "", 0)
	if !resp.Ok || !strings.Contains(string(resp.OutputJson), `"hostname"`) {
		t.Fatalf("system.info over gRPC: %v", resp)
	}
	if err := a.SetCapabilityEnabled("system.info", false); err != nil {
		t.Fatal(err)
	}
	waitCapability(t, rg, id, "system.info", false)

	if _, err := rg.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: id}); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, node.StateRevoked)
}

// TestGRPCRenewsByChallenge: a node on the gRPC fallback cannot renew over
// its session; it renews by challenge over the pairing service and
// reconnects to present the new certificate.
func TestGRPCRenewsByChallenge(t *testing.T) {
	t.Parallel()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	clk := &clock{}
	rg := startGateway(t, t.TempDir(), "", clk.Now, func(c *gateway.Config) {
		c.TCPListener, c.PacketConn = tcp, udp
		c.Advertise = []string{tcp.Addr().String()}
		// Backdated a minute, a ten-second certificate is due at once.
		c.DeviceCertLifetime = 10 * time.Second
	})
	a := newAgent(t, "renewing-firewalled")
	if _, err := a.Pair(t.Context(), node.PairOptions{Gateway: tcp.Addr().String(), PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	paired := a.Status().CertificateNotAfter
	clk.Advance(5 * time.Second) // certificate times have whole seconds
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	watch := a.Watch(ctx)
	stop := runAgent(a)
	defer stop()
	var renewedAt time.Time
	for st := range watch {
		if renewedAt.IsZero() && st.CertificateNotAfter.After(paired) {
			renewedAt = time.Now()
		}
		// A session that started after the renewal presents the new
		// certificate.
		if !renewedAt.IsZero() && st.State == node.StateConnected && st.Transport == wire.TransportGRPC && st.ConnectedSince.After(renewedAt) {
			return
		}
	}
	t.Fatalf("no new gRPC session after renewing the certificate (renewed at %v); last status %+v", renewedAt, a.Status())
}
