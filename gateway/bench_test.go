package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/bench"
	"github.com/palyra/palyra-go/internal/quicecho"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/capability"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// echoCapability answers with its arguments, so that the benchmarks
// measure the path, not the work.
var echoCapability = bench.EchoCapability

// BenchmarkInvoke measures a call from the gateway's admin API to a
// connected node and back, beside a raw quic-go echo on a new stream per
// round trip (the floor), in the same run:
//
//	raw-quic      a new quic-go stream, the Invoke's bytes there and back
//	in-process    Gateway.Invoke called in the gateway's process: dispatcher,
//	              QUIC stream, node registry, result, audit row
//	admin-grpc    the same through the admin socket, as `palyra nodes invoke`
//
// The gateway's calls report commits/op too: store transactions (syncs to
// disk) per call, which the audit log's group commit keeps well below one.
func BenchmarkInvoke(b *testing.B) {
	dir := b.TempDir()
	rg := startGateway(b, dir, "127.0.0.1:0", nil, func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" })
	commits := func() float64 { return metricValue(b, metricsText(b, rg), "palyra_store_commits_total") }
	a := pairedAgent(b, rg, "bench", []capability.Capability{echoCapability}, 0)
	stop := runAgent(a)
	defer stop()
	req := &adminv1.InvokeRequest{DeviceId: a.Status().DeviceID, Capability: "bench.echo", ArgsJson: []byte(`{"n":1}`)}
	ctx, cancel := context.WithTimeout(b.Context(), 20*time.Second)
	defer cancel()
	for {
		resp, err := rg.admin.Invoke(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.Ok {
			break
		}
		if resp.ErrorCode != "offline" {
			b.Fatal(resp)
		}
		select {
		case <-ctx.Done():
			b.Fatal("node never came online")
		case <-time.After(10 * time.Millisecond):
		}
	}

	b.Run("raw-quic", func(b *testing.B) { benchRawNewStream(b, rg.g.CA()) })
	b.Run("in-process", func(b *testing.B) {
		inv := gateway.Invocation{DeviceID: req.DeviceId, Capability: req.Capability, Args: req.ArgsJson}
		b.ReportAllocs()
		before := commits()
		for b.Loop() {
			if resp, err := rg.g.Invoke(b.Context(), inv); err != nil || !resp.OK {
				b.Fatal(err, resp)
			}
		}
		b.ReportMetric((commits()-before)/float64(b.N), "commits/op")
	})
	b.Run("admin-grpc", func(b *testing.B) {
		b.ReportAllocs()
		before := commits()
		for b.Loop() {
			if resp, err := rg.admin.Invoke(b.Context(), req); err != nil || !resp.Ok {
				b.Fatal(err, resp)
			}
		}
		b.ReportMetric((commits()-before)/float64(b.N), "commits/op")
	})
}

// benchRawNewStream echoes an Invoke frame's bytes on a new quic-go stream
// per round trip, with mutual TLS like the node protocol's.
func benchRawNewStream(b *testing.B, _ any) {
	ca, err := identity.NewCA(rand.Reader, "bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	issue := func(server bool) tls.Certificate {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		cert, err := ca.IssueServerCertificate(pub, "bench", []string{"127.0.0.1"}, identity.IssueOptions{Now: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: priv, Leaf: cert}
	}
	srv, err := quicecho.Listen(issue(true), wire.ALPN)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client, err := quicecho.Dial(b.Context(), srv.Addr(), issue(false), wire.ALPN)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	msg, err := wire.AppendFrame(nil, &nodev1.Frame{Body: &nodev1.Frame_Invoke{Invoke: &nodev1.Invoke{
		RequestId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Capability: "bench.echo", ArgsJson: []byte(`{"n":1}`),
	}}})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, len(msg))
	b.ReportAllocs()
	for b.Loop() {
		if err := client.RoundTripNewStream(b.Context(), msg, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPairingFlood times a flood of 1,000 wrong pairing attempts from
// one address (127.0.0.2) over one connection, against a fresh gateway
// with the default limits each time, and reports how many the limits
// refused and how long a refusal took as the client saw it:
//
//	ms-min/-median/-max   the whole flood
//	refused/flood         attempts refused by the limits (the rest ran)
//	us-refused-median     one refused attempt, hello to refusal
func BenchmarkPairingFlood(b *testing.B) {
	const flood = 1000
	var took, refusedEach []time.Duration
	var refused int
	floods := 0
	run := func() {
		rg := startGateway(b, b.TempDir(), "127.0.0.1:0", nil)
		defer rg.stop()
		pc := dialPairing(b, rg.g.Addresses()[0], "127.0.0.2")
		pins := make([]pairing.PIN, flood)
		for i := range pins {
			pins[i] = randomPIN(b, fmt.Sprintf("%02d", i%100))
		}
		ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		for _, pin := range pins {
			if a := pc.try(ctx, b, pin); a.refused != nil {
				refused++
				refusedEach = append(refusedEach, a.helloTook)
			}
		}
		took = append(took, time.Since(start))
		floods++
	}
	for b.Loop() {
		run()
	}
	for floods < 3 {
		run()
	}
	reportSpread(b, took)
	slices.Sort(refusedEach)
	b.ReportMetric(float64(refused)/float64(floods), "refused/flood")
	b.ReportMetric(float64(refusedEach[len(refusedEach)/2])/float64(time.Microsecond), "us-refused-median")
}
