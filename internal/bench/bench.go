// Package bench measures the gateway the way it runs: the real gateway.New
// and Run with a SQLite store in a temporary directory (for the cluster
// phases, forward and revocation, two gateways on a PostgreSQL database
// the caller names), and real node.Agents paired through the real flow,
// on loopback, each figure beside its baseline measured in the same
// process and run: raw quic-go or grpc-go, a direct call beside a
// forwarded one, PostgreSQL's own NOTIFY beside a revocation. It is the harness of `palyra bench`; it must not import
// testing, so that the command can run it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/node/quiccarrier"
)

// The phases, in the order a run measures them.
const (
	PhaseLatency    = "latency"
	PhaseThroughput = "throughput"
	PhasePairing    = "pairing"
	PhaseGRPC       = "grpc"
	PhaseIdle       = "idle"
	PhaseStorm      = "storm"
	// PhaseForward and PhaseRevocation run two gateways on a PostgreSQL
	// database (Options.Database).
	PhaseForward    = "forward"
	PhaseRevocation = "revocation"
)

// Phases are the phases there are, in the order they run.
var Phases = []string{PhaseLatency, PhaseThroughput, PhasePairing, PhaseGRPC, PhaseIdle, PhaseStorm, PhaseForward, PhaseRevocation}

// clusterPhases need a PostgreSQL database.
var clusterPhases = []string{PhaseForward, PhaseRevocation}

// Options say what to measure, how often and how long.
type Options struct {
	// Phases to run (Phases' names); they run in Phases' order.
	Phases []string
	// Reps is how many times each figure is measured.
	Reps int
	// Calls is how many sequential calls one repetition of latency and
	// grpc times.
	Calls int
	// Window is how long one repetition of throughput runs.
	Window time.Duration
	// ThroughputNodes × InFlight calls run at once in throughput, then
	// OneNodeInFlight to a single node.
	ThroughputNodes, InFlight, OneNodeInFlight int
	// Pairings is how many devices pair, one after the other, in one
	// repetition of pairing.
	Pairings int
	// Nodes is how many nodes idle and storm hold.
	Nodes int
	// IdleWindow is how long one repetition of idle measures CPU.
	IdleWindow time.Duration
	// Database is the postgres:// URL of the database forward and
	// revocation run their gateways on. They leave the devices they pair
	// there (revoked, in revocation's case): give them one of their own.
	Database string
	// Revocations is how many nodes one repetition of revocation revokes.
	Revocations int
	// DefaultLimits keeps the gateway's per-source caps (GatewayOptions).
	DefaultLimits bool
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Progress gets a line now and then during long phases; nil discards.
	Progress io.Writer
	// Logger is the gateway's; nil discards.
	Logger *slog.Logger
	// IdleHeap, when set, gets a heap profile written while idle's nodes
	// are up, at the moment their heap is measured.
	IdleHeap io.Writer
}

// Defaults are the options of `palyra bench` without flags.
var Defaults = Options{
	Phases:          []string{PhaseLatency, PhaseThroughput, PhasePairing, PhaseGRPC},
	Reps:            5,
	Calls:           5000,
	Window:          3 * time.Second,
	ThroughputNodes: 100,
	InFlight:        64,
	OneNodeInFlight: 256,
	Pairings:        20,
	Nodes:           1000,
	IdleWindow:      10 * time.Second,
	Revocations:     20,
	Timeout:         30 * time.Minute,
}

// Validate refuses options that cannot run, saying which.
func (o *Options) Validate() error {
	for _, p := range o.Phases {
		if !slices.Contains(Phases, p) {
			return fmt.Errorf("unknown phase %q: the phases are %s", p, strings.Join(Phases, ", "))
		}
	}
	switch {
	case len(o.Phases) == 0:
		return errors.New("no phase chosen: the phases are " + strings.Join(Phases, ", "))
	case o.Reps < 1:
		return fmt.Errorf("--reps must be at least 1, not %d", o.Reps)
	case o.Calls < 1:
		return fmt.Errorf("--calls must be at least 1, not %d", o.Calls)
	case o.Window <= 0 || o.IdleWindow <= 0 || o.Timeout <= 0:
		return errors.New("--window, --idle-window and --timeout must be positive")
	case o.ThroughputNodes < 1 || o.InFlight < 1 || o.OneNodeInFlight < 1:
		return errors.New("--throughput-nodes, --in-flight and --one-node-in-flight must be at least 1")
	case o.Pairings < 1:
		return fmt.Errorf("--pairings must be at least 1, not %d", o.Pairings)
	case o.Nodes < 2:
		return fmt.Errorf("--nodes must be at least 2, not %d", o.Nodes)
	case o.Revocations < 1:
		return fmt.Errorf("--revocations must be at least 1, not %d", o.Revocations)
	}
	for _, p := range clusterPhases {
		switch {
		case !o.has(p):
		case o.Database == "":
			return fmt.Errorf("phase %s runs two gateways on one PostgreSQL database: name one with --database postgres://USER@HOST:PORT/DATABASE", p)
		case !store.IsDatabaseURL(o.Database):
			return fmt.Errorf("--database must be a postgres:// URL (postgres://USER@HOST:PORT/DATABASE), not %q", store.DescribeDatabase(o.Database))
		}
	}
	return nil
}

func (o *Options) has(phase string) bool { return slices.Contains(o.Phases, phase) }

// run is one run's state.
type run struct {
	opts Options
	r    *Report
	dir  string
	pki  *pki
	// trs are the QUIC sockets the run's nodes share, nodesPerSocket to
	// one.
	trs []*quiccarrier.Transport
}

// nodesPerSocket is how many nodes of a run share one UDP socket. Every
// connection of a quic-go Transport goes through one map under one lock,
// which its read loop takes for every packet: in a storm of 10,000 nodes
// on one socket, thousands of dials failing in the crush queued on that
// lock to remove their connection IDs, the read loop with them, so the
// handshakes' packets waited there until the handshakes timed out too.
// A socket per 1,000 nodes costs ten descriptors for 10,000.
const nodesPerSocket = 1000

func (b *run) progress(format string, a ...any) {
	if b.opts.Progress != nil {
		fmt.Fprintf(b.opts.Progress, "bench: "+format+"\n", a...)
	}
}

func (b *run) gatewayOptions() GatewayOptions {
	return GatewayOptions{DefaultLimits: b.opts.DefaultLimits, Logger: b.opts.Logger}
}

// Run measures the phases opts names and returns what it measured; on an
// error it returns what it measured before it, too.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, opts.Timeout, fmt.Errorf("the run's --timeout (%v) ran out", opts.Timeout))
	defer cancel()
	dir, err := os.MkdirTemp("", "palyra-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b := &run{opts: opts, r: &Report{}, dir: dir}
	if b.pki, err = newPKI(); err != nil {
		return nil, err
	}
	for range (max(opts.Nodes, opts.ThroughputNodes) + nodesPerSocket - 1) / nodesPerSocket {
		tr, err := quiccarrier.NewTransport("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer tr.Close()
		b.trs = append(b.trs, tr)
	}
	b.r.Notes = append(b.r.Notes, fmt.Sprintf("the run's nodes share UDP sockets (node.Config.QUICTransport), %d nodes to one; every raw quic-go client shares one", nodesPerSocket))
	if !opts.DefaultLimits {
		b.r.Notes = append(b.r.Notes, "the gateway's per-source caps on pairing, connections and QUIC handshakes are off (its caps in all stay): every node dials from 127.0.0.1 (--default-limits keeps them)")
	}
	runPhases := func(phases []phase) error {
		for _, p := range phases {
			if !opts.has(p.name) {
				continue
			}
			b.progress("phase %s", p.name)
			if err := p.run(ctx); err != nil {
				return fmt.Errorf("phase %s: %w", p.name, err)
			}
		}
		return nil
	}
	if err := runPhases([]phase{{PhaseLatency, b.latency}, {PhaseThroughput, b.throughput}, {PhasePairing, b.pairing}, {PhaseGRPC, b.grpc}}); err != nil {
		return b.r, err
	}
	if opts.has(PhaseIdle) || opts.has(PhaseStorm) {
		if err := b.many(ctx); err != nil {
			return b.r, err
		}
	}
	if slices.ContainsFunc(clusterPhases, opts.has) {
		b.r.Notes = append(b.r.Notes, "forward and revocation ran two gateways on "+store.DescribeDatabase(opts.Database)+", where their devices stay")
	}
	if err := runPhases([]phase{{PhaseForward, b.forward}, {PhaseRevocation, b.revocation}}); err != nil {
		return b.r, err
	}
	return b.r, nil
}

// phase is one of Phases and what measures it.
type phase struct {
	name string
	run  func(context.Context) error
}

// subdir is a new directory under the run's.
func (b *run) subdir(name string) (string, error) {
	dir, err := os.MkdirTemp(b.dir, name+"-")
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(filepath.Join(dir, "gateway"), 0o700)
}
