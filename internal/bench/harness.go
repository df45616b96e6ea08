package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/adminrpc"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/netwatch"
	"github.com/palyra/palyra-go/node/quiccarrier"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// EchoCapability answers with its arguments, so that the figures are the
// path's, not the work's.
var EchoCapability = capability.Capability{
	Spec: capability.Spec{
		Name:           "bench.echo",
		Description:    "returns its arguments",
		Schema:         json.RawMessage(`{"type":"object"}`),
		Privacy:        capability.PrivacyLow,
		DefaultEnabled: true,
		DefaultConsent: capability.ConsentAllow,
	},
	Run: func(_ context.Context, c capability.Call) (json.RawMessage, error) { return c.Args, nil },
}

// echoArgs are the arguments of every benchmark call.
var echoArgs = json.RawMessage(`{"n":1}`)

// pairWorkers is how many nodes pair at once.
const pairWorkers = 8

// Gateway is a gateway served in the background: the real gateway.New
// and Run, with its SQLite store in its data directory.
type Gateway struct {
	G     *gateway.Gateway
	Admin adminv1.AdminClient
	// Dir is its data directory.
	Dir string

	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan error
}

// GatewayOptions say how to start a Gateway.
type GatewayOptions struct {
	// Listen is HOST:PORT; empty: 127.0.0.1:0. A restart gives the address
	// the previous gateway had.
	Listen string
	// DefaultLimits keeps the gateway's caps on pairing attempts and on
	// connections and QUIC handshakes per source address. Every benchmark
	// node dials from 127.0.0.1, so caps meant to stop one flooding
	// address would otherwise be what a run of many nodes measures; by
	// default they are off. The caps in all (handshakes in progress, the
	// QUIC Retry threshold, connections without a device certificate)
	// stay: they are the admission control a storm measures.
	DefaultLimits bool
	// Configure changes the Config last.
	Configure func(*gateway.Config)
	Logger    *slog.Logger
}

// StartGateway opens the gateway in dir and runs it until Stop.
func StartGateway(ctx context.Context, dir string, o GatewayOptions) (*Gateway, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := gateway.Config{
		DataDir:     dir,
		Name:        "bench gateway",
		Listen:      o.Listen,
		AdminSocket: filepath.Join(dir, "admin.sock"),
		Logger:      o.Logger,
	}
	if !o.DefaultLimits {
		cfg.PairingBurst, cfg.PairingConcurrency = -1, -1
		cfg.MaxQUICHandshakesPerSource, cfg.MaxUnauthenticatedConnsPerSource = -1, -1
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	g, err := gateway.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("starting the gateway: %w", err)
	}
	conn, err := grpc.NewClient("unix://"+cfg.AdminSocket, adminrpc.DialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("dialing the admin socket: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	gw := &Gateway{G: g, Admin: adminv1.NewAdminClient(conn), Dir: dir, conn: conn, cancel: cancel, done: make(chan error, 1)}
	go func() { gw.done <- g.Run(runCtx) }()
	return gw, nil
}

// Addr is where nodes reach it.
func (gw *Gateway) Addr() string { return gw.G.Addresses()[0] }

// Stop ends Run and waits for it; it may be called again.
func (gw *Gateway) Stop() error {
	if gw.cancel == nil {
		return nil
	}
	gw.cancel()
	gw.cancel = nil
	err := <-gw.done
	gw.conn.Close()
	return err
}

// Invoke calls bench.echo on the node and checks the answer.
func (gw *Gateway) Invoke(ctx context.Context, deviceID string) error {
	res, err := gw.G.Invoke(ctx, gateway.Invocation{DeviceID: deviceID, Capability: EchoCapability.Spec.Name, Args: echoArgs})
	switch {
	case err != nil:
		return fmt.Errorf("invoking %s: %w", EchoCapability.Spec.Name, err)
	case !res.OK:
		return fmt.Errorf("invoking %s: %s: %s", EchoCapability.Spec.Name, res.ErrorCode, res.ErrorMessage)
	}
	return nil
}

// NewAgent opens an agent in dir sharing bench.echo, its secrets in the
// file store there (the node's own; a run of many nodes cannot use as
// many keychain entries), its QUIC sessions on tr if not nil, and no
// watching for wake or network changes (one watcher per node would
// measure the watchers).
func NewAgent(dir, name string, tr *quiccarrier.Transport) (*node.Agent, error) {
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		return nil, err
	}
	return node.New(node.Config{
		ConfigDir: dir, Secrets: secrets, Name: name,
		Capabilities:  []capability.Capability{EchoCapability},
		NetworkEvents: func(context.Context) <-chan netwatch.Event { return nil },
		QUICTransport: tr,
	})
}

// PairAgents makes n agents under dir and pairs each with gw through the
// real flow (a PIN minted to approve at once, CPace, the certificate),
// several at once, reporting progress. Agent i's QUIC sessions go over
// trs[i%len(trs)] (a socket of its own each if trs is empty).
func PairAgents(ctx context.Context, gw *Gateway, dir string, n int, trs []*quiccarrier.Transport, progress func(done int)) ([]*node.Agent, error) {
	agents := make([]*node.Agent, n)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(pairWorkers)
	var mu sync.Mutex
	done := 0
	for i := range n {
		eg.Go(func() error {
			name := fmt.Sprintf("bench-%05d", i)
			var tr *quiccarrier.Transport
			if len(trs) > 0 {
				tr = trs[i%len(trs)]
			}
			a, err := PairAgent(ctx, gw, filepath.Join(dir, name), name, tr)
			if err != nil {
				return err
			}
			agents[i] = a
			mu.Lock()
			done++
			d := done
			mu.Unlock()
			if progress != nil {
				progress(d)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return agents, nil
}

// PairAgent makes one agent in dir and pairs it with gw.
func PairAgent(ctx context.Context, gw *Gateway, dir, name string, tr *quiccarrier.Transport) (*node.Agent, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	a, err := NewAgent(dir, name, tr)
	if err != nil {
		return nil, err
	}
	if err := pair(ctx, gw, a); err != nil {
		return nil, fmt.Errorf("pairing %s: %w", name, err)
	}
	return a, nil
}

// CodeAutoApprove mints a code whose pairing is approved at once.
var CodeAutoApprove = gateway.CodeOptions{AutoApprove: true}

func pair(ctx context.Context, gw *Gateway, a *node.Agent) error {
	code, err := gw.G.MintPairingCode(ctx, CodeAutoApprove)
	if err != nil {
		return err
	}
	_, err = a.Pair(ctx, node.PairOptions{Gateway: gw.Addr(), PIN: code.PIN})
	return err
}

// Fleet is agents running, with their latest status.
type Fleet struct {
	Agents []*node.Agent

	// ctx ends with Stop; every agent runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// status is each agent's latest; runErr the first Run that failed.
	// Guarded by mu.
	status []node.Status
	runErr error
	// changed has a token when a status changed.
	changed chan struct{}
}

// fleetWave is how many agents the phases start at once
// (RunFleetInWaves). A node whose QUIC handshake is not done within the
// head start dials gRPC over TCP beside it, and a crowd connecting at once
// to a cold gateway (no GoAway told it QUIC works) is that slow: nearly
// every node of the crowd holds a TCP connection, both of its ends in this
// process, until its QUIC handshake completes. 10,000 nodes started at
// once need some 29,000 descriptors (one node.lock each beside those),
// past a 20,000 limit; a wave of 500 bounds the extra to about 1,000.
const fleetWave = 500

// RunFleetInWaves runs the agents wave at a time, each wave once every
// agent started before it is connected (over either carrier: one that took
// gRPC beside a slow QUIC moves to QUIC on its own a few seconds later),
// and returns the fleet once all satisfy ok. The storm, not the first
// connect, is what the many phases measure. progress, if not nil, is told
// how many are connected after each wave.
func RunFleetInWaves(ctx context.Context, agents []*node.Agent, wave int, ok func(node.Status) bool, progress func(connected int)) (*Fleet, error) {
	wave = max(wave, 1)
	f := newFleet(agents)
	connected := func(st node.Status) bool { return st.State == node.StateConnected }
	for start := 0; start < len(agents); start += wave {
		end := min(start+wave, len(agents))
		for i := start; i < end; i++ {
			f.run(i)
		}
		what := fmt.Sprintf("the first %d nodes are connected", end)
		if err := f.Wait(ctx, what, connected, func(c int) bool { return c == end }); err != nil {
			f.Stop()
			return nil, err
		}
		if progress != nil {
			progress(end)
		}
	}
	if err := f.WaitAll(ctx, "connected", ok); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

// newFleet is a fleet of agents none of which runs yet.
func newFleet(agents []*node.Agent) *Fleet {
	ctx, cancel := context.WithCancel(context.Background())
	return &Fleet{Agents: agents, ctx: ctx, cancel: cancel, status: make([]node.Status, len(agents)), changed: make(chan struct{}, 1)}
}

// run runs agent i until Stop.
func (f *Fleet) run(i int) {
	a := f.Agents[i]
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		if err := a.Run(f.ctx); err != nil {
			f.mu.Lock()
			f.runErr = cmp.Or(f.runErr, fmt.Errorf("node %s: %w", a.Status().DeviceName, err))
			f.mu.Unlock()
			f.notify()
		}
	}()
	go func() {
		defer f.wg.Done()
		for st := range a.Watch(f.ctx) {
			f.mu.Lock()
			f.status[i] = st
			f.mu.Unlock()
			f.notify()
		}
	}()
}

func (f *Fleet) notify() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// Count is how many agents' status satisfies ok.
func (f *Fleet) Count(ok func(node.Status) bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, st := range f.status {
		if ok(st) {
			n++
		}
	}
	return n
}

// waitRecount is the least time between two counts of Fleet.Wait.
const waitRecount = 10 * time.Millisecond

// Wait waits until done(count of agents satisfying ok) holds, a node's
// Run fails, or ctx ends.
func (f *Fleet) Wait(ctx context.Context, what string, ok func(node.Status) bool, done func(int) bool) error {
	var counted time.Time
	for {
		// Statuses change thousands of times a second in a storm, and a
		// count reads every one: counting at most every waitRecount
		// keeps the harness's CPU out of what the storm measures, for a
		// wait that ends at most that much late.
		if since := time.Since(counted); since < waitRecount {
			timer := time.NewTimer(waitRecount - since)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
			timer.Stop()
		}
		counted = time.Now()
		f.mu.Lock()
		runErr := f.runErr
		f.mu.Unlock()
		if runErr != nil {
			return runErr
		}
		n := f.Count(ok)
		if done(n) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %d of %d nodes are (the others: %s): %w", what, n, len(f.Agents), f.others(ok), context.Cause(ctx))
		case <-f.changed:
		}
	}
}

// others says how many agents whose status does not satisfy ok are in
// which state, with which last error.
func (f *Fleet) others(ok func(node.Status) bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	counts := map[string]int{}
	for _, st := range f.status {
		if !ok(st) {
			counts[fmt.Sprintf("%s %s %.200q %q", st.State, st.Transport, st.LastError, st.FallbackReason)]++
		}
	}
	var parts []string
	for k, c := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", c, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// Connected says a status is connected over QUIC.
func Connected(st node.Status) bool {
	return st.State == node.StateConnected && st.Transport == wire.TransportQUIC
}

// WaitAll waits until every agent's status satisfies ok.
func (f *Fleet) WaitAll(ctx context.Context, what string, ok func(node.Status) bool) error {
	return f.Wait(ctx, what, ok, func(n int) bool { return n == len(f.Agents) })
}

// Stop ends every agent's Run and waits for them.
func (f *Fleet) Stop() {
	f.cancel()
	f.wg.Wait()
}

// udpBlockedGateway starts a gateway whose QUIC listens on another port
// than the one it advertises: datagrams to the advertised one go
// nowhere, as behind a firewall that drops UDP, so nodes fall back to
// gRPC over TCP. The returned close releases the UDP socket.
func udpBlockedGateway(ctx context.Context, dir string, o GatewayOptions) (*Gateway, func(), error) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tcp.Close()
		return nil, nil, err
	}
	o.Listen = ""
	o.Configure = func(c *gateway.Config) {
		c.TCPListener, c.PacketConn = tcp, udp
		c.Advertise = []string{tcp.Addr().String()}
	}
	gw, err := StartGateway(ctx, dir, o)
	if err != nil {
		tcp.Close()
		udp.Close()
		return nil, nil, err
	}
	return gw, func() { tcp.Close(); udp.Close() }, nil
}

// deadlineFor bounds one wait to limit and to ctx.
func deadlineFor(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, limit, fmt.Errorf("%w after %v", context.DeadlineExceeded, limit))
}
