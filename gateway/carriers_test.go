package gateway_test

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/internal/testnetns"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// pairedAgent is a node paired with rg (approved at once) with caps,
// probing QUIC every probe while on gRPC, which connects to rg
// (keepPairingGateway); options change its Config.
func pairedAgent(tb testing.TB, rg *runningGateway, name string, caps []capability.Capability, probe time.Duration, options ...func(*node.Config)) *node.Agent {
	tb.Helper()
	dir := tb.TempDir()
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg := node.Config{
		ConfigDir: dir, Secrets: secrets, Name: name, Logger: testlog.New(tb, "who", name),
		Capabilities: caps, QUICProbeInterval: probe,
	}
	for _, o := range options {
		o(&cfg)
	}
	a, err := node.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	code, err := rg.admin.MintNodePairingCode(tb.Context(), &adminv1.MintNodePairingCodeRequest{AutoApprove: true})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := a.Pair(tb.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: code.Pin}); err != nil {
		tb.Fatal(err)
	}
	return keepPairingGateway(tb, a, cfg)
}

// gatewayPort is the port rg serves QUIC (UDP) and gRPC (TCP) on.
func gatewayPort(tb testing.TB, rg *runningGateway) int {
	tb.Helper()
	_, p, err := net.SplitHostPort(rg.g.Addresses()[0])
	if err != nil {
		tb.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// gate is a capability whose calls block until released.
type gate struct {
	started chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}, 1), release: make(chan struct{})} }

func (g *gate) capability() capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:           "test.gate",
			Description:    "answers once the test releases it",
			Schema:         json.RawMessage(`{"type":"object"}`),
			Privacy:        capability.PrivacyLow,
			DefaultEnabled: true,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: func(ctx context.Context, c capability.Call) (json.RawMessage, error) {
			g.started <- struct{}{}
			select {
			case <-g.release:
				return json.RawMessage(`{"released":true}`), nil
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		},
	}
}

// TestUDPBlockedThenAllowed: with UDP to the gateway dropped, a paired node
// connects over gRPC and is invoked there; once UDP gets through again it
// moves to QUIC, and a call that ran across the move gets its result.
func TestUDPBlockedThenAllowed(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	testnetns.DropUDP(t, gatewayPort(t, rg))
	g := newGate()
	a := pairedAgent(t, rg, "café", []capability.Capability{g.capability(), echoCapability}, 200*time.Millisecond)
	id := a.Status().DeviceID
	stop := runAgent(a)
	defer stop()

	st := waitState(t, a, node.StateConnected)
	if st.Transport != wire.TransportGRPC || st.FallbackReason == "" || st.FallbackError == "" {
		t.Fatalf("status does not say it fell back to gRPC: %+v", st)
	}
	if resp := invokeAdmin(t, rg, id, "bench.echo", `{"n":1}`, 0); !resp.Ok {
		t.Fatalf("call over gRPC: %v", resp)
	}

	// A call runs on the gRPC session when UDP is let through.
	result := make(chan *adminv1.InvokeResponse, 1)
	go func() {
		resp, err := rg.admin.Invoke(context.Background(), &adminv1.InvokeRequest{
			DeviceId: id, Capability: "test.gate", ArgsJson: []byte(`{}`), TimeoutMs: 60_000,
		})
		if err != nil {
			resp = &adminv1.InvokeResponse{ErrorCode: "rpc", ErrorMessage: err.Error()}
		}
		result <- resp
	}()
	testwait.Recv(t, g.started, 20*time.Second, "the gated call's start")
	testnetns.Allow(t)
	st = waitStatus(t, a, "moved to QUIC", func(s node.Status) bool {
		return s.State == node.StateConnected && s.Transport == wire.TransportQUIC
	})
	if st.FallbackReason != "" || st.FallbackError != "" {
		t.Errorf("status over QUIC still gives a fallback reason: %+v", st)
	}
	close(g.release)
	resp := testwait.Recv(t, result, 30*time.Second, "the gated call's result")
	if !resp.Ok || string(resp.OutputJson) != `{"released":true}` {
		t.Fatalf("the call across the move to QUIC ended with %s: %s (%s)", resp.ErrorCode, resp.ErrorMessage, resp.OutputJson)
	}
	if resp := invokeAdmin(t, rg, id, "bench.echo", `{"n":2}`, 0); !resp.Ok {
		t.Fatalf("call over QUIC: %v", resp)
	}
	d, err := rg.admin.DescribeNode(t.Context(), &adminv1.DeviceRequest{DeviceId: id})
	if err != nil || d.GetNode().GetTransport() != wire.TransportQUIC {
		t.Fatalf("the gateway does not have the node over QUIC: %v %v", d, err)
	}
}

// BenchmarkConnectUDPBlocked measures, with UDP to the gateway dropped, the
// time from Agent.Run's start to the node shown connected (over gRPC, after
// QUIC's head start), over at least five runs.
func BenchmarkConnectUDPBlocked(b *testing.B) {
	if !testnetns.Enter(b) {
		return
	}
	rg := startGateway(b, b.TempDir(), "127.0.0.1:0", nil)
	testnetns.DropUDP(b, gatewayPort(b, rg))
	a := pairedAgent(b, rg, "bench", []capability.Capability{echoCapability}, 0)
	measureRuns(b, func() time.Duration {
		ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
		defer cancel()
		watch := a.Watch(ctx)
		start := time.Now()
		stop := runAgent(a)
		defer stop()
		for st := range watch {
			if st.State == node.StateConnected {
				if st.Transport != wire.TransportGRPC {
					b.Fatalf("connected over %s with UDP dropped", st.Transport)
				}
				return time.Since(start)
			}
		}
		b.Fatal("the node did not connect within 30 s")
		return 0
	})
}

// measureRuns calls run once per b.Loop iteration and at least five times
// in all, and reports the minimum, median and maximum of what it returned.
func measureRuns(b *testing.B, run func() time.Duration) {
	var took []time.Duration
	for b.Loop() {
		took = append(took, run())
	}
	for len(took) < 5 {
		took = append(took, run())
	}
	reportSpread(b, took)
}

// reportSpread reports the minimum, median and maximum of runs in ms.
func reportSpread(b *testing.B, runs []time.Duration) {
	slices.Sort(runs)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(runs[0]), "ms-min")
	b.ReportMetric(ms(runs[len(runs)/2]), "ms-median")
	b.ReportMetric(ms(runs[len(runs)-1]), "ms-max")
	b.ReportMetric(0, "ns/op")
}
