package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/errgroup"

	"github.com/palyra/palyra-go/internal/quicecho"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
)

const (
	// connectWait bounds waiting for a few nodes to connect.
	connectWait = 30 * time.Second
	// probeWait is the more that waiting for thousands allows: a node of
	// a crowd whose QUIC handshake missed the head start connects over
	// gRPC first, and if its probes of QUIC time out in the crowds of the
	// next waves, it probes again only after its doubled probe interval
	// (up to 2 min, ±20 %).
	probeWait = 3 * time.Minute
	// warmCalls run before the timed ones, untimed.
	warmCalls = 200
	// maxRateCalls bounds one throughput window in count as well as time.
	maxRateCalls = 50_000_000
)

// timeCalls times n calls of call, one after the other.
func timeCalls(ctx context.Context, n int, call func() error) ([]time.Duration, error) {
	d := make([]time.Duration, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		start := time.Now()
		if err := call(); err != nil {
			return nil, err
		}
		d = append(d, time.Since(start))
	}
	return d, nil
}

// measureRate runs workers goroutines calling call(worker) until window
// has passed and returns the calls completed per second.
func measureRate(ctx context.Context, window time.Duration, workers int, call func(worker int) error) (float64, error) {
	var done atomic.Int64
	start := time.Now()
	end := start.Add(window)
	eg, ctx := errgroup.WithContext(ctx)
	for w := range workers {
		eg.Go(func() error {
			for time.Now().Before(end) && done.Load() < maxRateCalls {
				if err := ctx.Err(); err != nil {
					return context.Cause(ctx)
				}
				if err := call(w); err != nil {
					return err
				}
				done.Add(1)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return 0, err
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// startNodes starts a gateway in a new directory, pairs n nodes with it
// and runs them, in waves (RunFleetInWaves), until they are connected as
// ok says.
func (b *run) startNodes(ctx context.Context, name string, n int, gw *Gateway, ok func(node.Status) bool) (*Fleet, error) {
	dir, err := b.subdir(name)
	if err != nil {
		return nil, err
	}
	agents, err := PairAgents(ctx, gw, dir, n, b.trs, b.pairProgress(n))
	if err != nil {
		return nil, err
	}
	wctx, cancel := deadlineFor(ctx, connectWait+time.Duration(n)*20*time.Millisecond+probeWait)
	defer cancel()
	var progress func(int)
	if n > fleetWave {
		progress = func(c int) { b.progress("connected %d of %d nodes", c, n) }
	}
	return RunFleetInWaves(wctx, agents, fleetWave, ok, progress)
}

// pairProgress reports every tenth of n pairings, for runs of many.
func (b *run) pairProgress(n int) func(int) {
	if n < 50 {
		return nil
	}
	return func(done int) {
		if done%(n/10) == 0 || done == n {
			b.progress("paired %d of %d nodes", done, n)
		}
	}
}

func (b *run) gateway(ctx context.Context, name string) (*Gateway, error) {
	dir, err := b.subdir(name)
	if err != nil {
		return nil, err
	}
	return StartGateway(ctx, filepath.Join(dir, "gateway"), b.gatewayOptions())
}

// rawClients are n raw quic-go echo clients of one server.
type rawClients struct {
	*rawEnds
	clients []*quicecho.Client
	msg     []byte
}

func (b *run) rawClients(ctx context.Context, n int) (*rawClients, error) {
	msg, err := invokeFrame()
	if err != nil {
		return nil, err
	}
	ends, err := openRawEnds(b.pki)
	if err != nil {
		return nil, err
	}
	rc := &rawClients{rawEnds: ends, msg: msg}
	for range n {
		c, err := rc.dial(ctx, &quic.Config{MaxIncomingStreams: 1 << 16})
		if err != nil {
			rc.close()
			return nil, err
		}
		rc.clients = append(rc.clients, c)
	}
	return rc, nil
}

// roundTrip is one call's shape on client i: a new stream, the Invoke's
// bytes there and back.
func (rc *rawClients) roundTrip(ctx context.Context, i int, buf []byte) error {
	return rc.clients[i].RoundTripNewStream(ctx, rc.msg, buf)
}

func (rc *rawClients) close() {
	for _, c := range rc.clients {
		_ = c.Close()
	}
	rc.rawEnds.close()
}

// latency times sequential calls from the gateway's in-process admin API
// (Gateway.Invoke: dispatcher, a QUIC stream to the node, the node's
// capability, the result, the audit row) beside a raw quic-go round trip
// on a new stream with the same bytes.
func (b *run) latency(ctx context.Context) error {
	gw, err := b.gateway(ctx, "latency")
	if err != nil {
		return err
	}
	defer gw.Stop()
	fleet, err := b.startNodes(ctx, "latency", 1, gw, Connected)
	if err != nil {
		return err
	}
	defer fleet.Stop()
	id := fleet.Agents[0].Status().DeviceID
	raw, err := b.rawClients(ctx, 1)
	if err != nil {
		return err
	}
	defer raw.close()
	buf := make([]byte, len(raw.msg))
	return b.sequential(ctx, PhaseLatency, "invoke", "invoke %s, sequential, in-process admin API (raw: new-stream echo)",
		func() error { return gw.Invoke(ctx, id) },
		func() error { return raw.roundTrip(ctx, 0, buf) })
}

// sequential times Calls calls of call and of rawCall, one after the
// other, after warmCalls of each, per repetition, and records their p50
// and p99 as figure_p50_us and figure_p99_us, label a format for the
// percentile's name.
func (b *run) sequential(ctx context.Context, phase, figure, label string, call, rawCall func() error) error {
	if _, err := timeCalls(ctx, warmCalls, call); err != nil {
		return err
	}
	if _, err := timeCalls(ctx, warmCalls, rawCall); err != nil {
		return err
	}
	for rep := range b.opts.Reps {
		start := readAllocs()
		d, err := timeCalls(ctx, b.opts.Calls, call)
		if err != nil {
			return err
		}
		mid := readAllocs()
		rd, err := timeCalls(ctx, b.opts.Calls, rawCall)
		if err != nil {
			return err
		}
		end := readAllocs()
		b.r.pair(figure+"_p50_us", fmt.Sprintf(label, "p50"), micros(percentile(d, 0.5)), micros(percentile(rd, 0.5)))
		b.r.pair(figure+"_p99_us", fmt.Sprintf(label, "p99"), micros(percentile(d, 0.99)), micros(percentile(rd, 0.99)))
		calls := float64(b.opts.Calls)
		b.r.pair(figure+"_allocs", fmt.Sprintf(label, "allocations per call, both ends"),
			float64(mid.count-start.count)/calls, float64(end.count-mid.count)/calls)
		b.r.pair(figure+"_alloc_bytes", fmt.Sprintf(label, "bytes allocated per call, both ends"),
			float64(mid.bytes-start.bytes)/calls, float64(end.bytes-mid.bytes)/calls)
		b.progress("%s %d/%d", phase, rep+1, b.opts.Reps)
	}
	return nil
}

// allocs is the process's allocations so far: their number and bytes.
type allocs struct{ count, bytes uint64 }

// readAllocs reads allocs. Everything else the process runs meanwhile
// (the node's and the gateway's timers, the raw ends' idle connections)
// is counted too; both sides of a sequential figure have the same.
func readAllocs() allocs {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return allocs{count: ms.Mallocs, bytes: ms.TotalAlloc}
}

// throughput counts calls completed per second with many in flight: to
// ThroughputNodes nodes × InFlight each, then OneNodeInFlight to one
// node, beside raw quic-go clients doing the same.
func (b *run) throughput(ctx context.Context) error {
	n := b.opts.ThroughputNodes
	gw, err := b.gateway(ctx, "throughput")
	if err != nil {
		return err
	}
	defer gw.Stop()
	fleet, err := b.startNodes(ctx, "throughput", n, gw, Connected)
	if err != nil {
		return err
	}
	defer fleet.Stop()
	ids := make([]string, n)
	for i, a := range fleet.Agents {
		ids[i] = a.Status().DeviceID
	}
	raw, err := b.rawClients(ctx, n)
	if err != nil {
		return err
	}
	defer raw.close()
	workers := max(n*b.opts.InFlight, b.opts.OneNodeInFlight)
	bufs := make([][]byte, workers)
	for i := range bufs {
		bufs[i] = make([]byte, len(raw.msg))
	}
	many := func(w int) error { return gw.Invoke(ctx, ids[w%n]) }
	rawMany := func(w int) error { return raw.roundTrip(ctx, w%n, bufs[w]) }
	one := func(int) error { return gw.Invoke(ctx, ids[0]) }
	rawOne := func(w int) error { return raw.roundTrip(ctx, 0, bufs[w]) }
	for rep := range b.opts.Reps {
		rate, err := measureRate(ctx, b.opts.Window, n*b.opts.InFlight, many)
		if err != nil {
			return err
		}
		rawRate, err := measureRate(ctx, b.opts.Window, n*b.opts.InFlight, rawMany)
		if err != nil {
			return err
		}
		b.r.pair("throughput_per_s", fmt.Sprintf("throughput, %d nodes × %d in flight", n, b.opts.InFlight), rate, rawRate)
		rate, err = measureRate(ctx, b.opts.Window, b.opts.OneNodeInFlight, one)
		if err != nil {
			return err
		}
		rawRate, err = measureRate(ctx, b.opts.Window, b.opts.OneNodeInFlight, rawOne)
		if err != nil {
			return err
		}
		b.r.pair("throughput_one_node_per_s", fmt.Sprintf("throughput, one node, %d in flight", b.opts.OneNodeInFlight), rate, rawRate)
		b.progress("throughput %d/%d", rep+1, b.opts.Reps)
	}
	return nil
}

// pairing times devices pairing one after the other through the real flow
// (a PIN minted to approve at once, untimed; then the device's Pair: TLS,
// CPace, the certificate request, the store, the answer), beside a new
// grpc-go TLS connection and one unary call.
func (b *run) pairing(ctx context.Context) error {
	gw, err := b.gateway(ctx, "pairing")
	if err != nil {
		return err
	}
	defer gw.Stop()
	dir, err := b.subdir("pairing-nodes")
	if err != nil {
		return err
	}
	cert, err := b.pki.cert()
	if err != nil {
		return err
	}
	// The Pairing service authenticates only the gateway, so the baseline
	// does too.
	echo, err := startGRPCEcho(cert, tls.NoClientCert)
	if err != nil {
		return err
	}
	defer echo.close()
	msg, err := invokeFrame()
	if err != nil {
		return err
	}
	made := 0
	pairOne := func() (time.Duration, error) {
		made++
		name := fmt.Sprintf("pair-%05d", made)
		a, err := NewAgent(filepath.Join(dir, name), name, nil)
		if err != nil {
			return 0, err
		}
		code, err := gw.G.MintPairingCode(ctx, CodeAutoApprove)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := a.Pair(ctx, node.PairOptions{Gateway: gw.Addr(), PIN: code.PIN}); err != nil {
			return 0, fmt.Errorf("pairing %s: %w", name, err)
		}
		return time.Since(start), nil
	}
	rawOne := func() (time.Duration, error) {
		start := time.Now()
		conn, err := dialGRPCEcho(echo.addr(), tls.Certificate{})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		if err := grpcEchoCall(ctx, conn, msg); err != nil {
			return 0, fmt.Errorf("grpc-go baseline: %w", err)
		}
		return time.Since(start), nil
	}
	for rep := range b.opts.Reps {
		var d, rd []time.Duration
		for range b.opts.Pairings {
			t, err := pairOne()
			if err != nil {
				return err
			}
			d = append(d, t)
			if t, err = rawOne(); err != nil {
				return err
			}
			rd = append(rd, t)
		}
		b.r.pair("pairing_p50_ms", "pairing p50, PIN to certificate, one at a time (raw: new TLS connection + unary call)", millis(percentile(d, 0.5)), millis(percentile(rd, 0.5)))
		b.progress("pairing %d/%d", rep+1, b.opts.Reps)
	}
	return nil
}

// grpc times sequential calls to a node on the gRPC fallback (its QUIC
// finds nothing on the advertised UDP port), beside grpc-go unary calls
// over mutual TLS.
func (b *run) grpc(ctx context.Context) error {
	dir, err := b.subdir("grpc")
	if err != nil {
		return err
	}
	gw, closeUDP, err := udpBlockedGateway(ctx, filepath.Join(dir, "gateway"), b.gatewayOptions())
	if err != nil {
		return err
	}
	defer closeUDP()
	defer gw.Stop()
	fleet, err := b.startNodes(ctx, "grpc", 1, gw, func(st node.Status) bool {
		return st.State == node.StateConnected && st.Transport == wire.TransportGRPC
	})
	if err != nil {
		return err
	}
	defer fleet.Stop()
	id := fleet.Agents[0].Status().DeviceID
	cert, err := b.pki.cert()
	if err != nil {
		return err
	}
	echo, err := startGRPCEcho(cert, tls.RequireAnyClientCert)
	if err != nil {
		return err
	}
	defer echo.close()
	conn, err := dialGRPCEcho(echo.addr(), cert)
	if err != nil {
		return err
	}
	defer conn.Close()
	msg, err := invokeFrame()
	if err != nil {
		return err
	}
	return b.sequential(ctx, PhaseGRPC, "grpc_invoke", "gRPC fallback invoke %s (raw: grpc-go unary, mTLS)",
		func() error { return gw.Invoke(ctx, id) },
		func() error { return grpcEchoCall(ctx, conn, msg) })
}
