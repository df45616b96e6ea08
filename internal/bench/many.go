package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

const (
	// stormWait bounds one restart's wait for every node (or raw client)
	// to be back, beside stormWaitPerNode: generous, because a node whose
	// dials keep failing in the crush backs off up to 30 s between them.
	stormWait        = 2 * time.Minute
	stormWaitPerNode = 20 * time.Millisecond
	// adminProbeInterval is how often the admin API is asked for the node
	// list while nodes come back.
	adminProbeInterval = 100 * time.Millisecond
	// adminProbeTimeout bounds one such call; longer counts as a failure.
	adminProbeTimeout = 5 * time.Second
)

// memory is the heap in use after a collection, and the resident set.
type memory struct{ heap, rss uint64 }

func readMemory() (memory, error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r, err := rss()
	return memory{heap: ms.HeapAlloc, rss: r}, err
}

// perNode is what grew from before to after, per node (0 if it shrank).
func perNode(before, after uint64, n int) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / float64(n)
}

// cpuShare is the process's CPU time over window, in ms per second.
func cpuShare(ctx context.Context, window time.Duration) (float64, error) {
	before, err := cpuTime()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	timer := time.NewTimer(window)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	case <-timer.C:
	}
	after, err := cpuTime()
	if err != nil {
		return 0, err
	}
	return millis(after-before) / time.Since(start).Seconds(), nil
}

// idleFigures and stormFigures are one side's repetitions, Palyra's or
// the raw baseline's.
type idleFigures struct {
	heap, rss float64
	cpu       []float64
}

type stormFigures struct {
	half, all []float64
	// cpuAfter is the CPU over IdleWindow once all are back.
	cpuAfter []float64
}

// many holds Nodes nodes connected to one gateway for idle and storm,
// then as many raw quic-go clients, and reports both. Each side is
// measured alone, the other's memory collected.
func (b *run) many(ctx context.Context) error {
	n := b.opts.Nodes
	b.progress("phases %v with %d nodes", b.opts.Phases, n)
	idle, storm, err := b.palyraMany(ctx)
	if err != nil {
		return err
	}

	b.progress("raw quic-go baseline with %d clients", n)
	before, err := readMemory()
	if err != nil && b.opts.has(PhaseIdle) {
		return fmt.Errorf("phase idle: %w", err)
	}
	raw, err := startRawFleet(b.pki, n)
	if err != nil {
		return err
	}
	defer raw.close()
	wctx, cancel := deadlineFor(ctx, stormWait+time.Duration(n)*stormWaitPerNode)
	defer cancel()
	if err := raw.wait(wctx, "connected", time.Time{}, func(c int) bool { return c == n }); err != nil {
		return err
	}
	if b.opts.has(PhaseIdle) {
		rawIdle, err := b.idle(ctx, before, n)
		if err != nil {
			return fmt.Errorf("phase idle, raw quic-go baseline: %w", err)
		}
		b.r.pair("idle_heap_per_node_bytes", fmt.Sprintf("%d idle nodes: heap per node, both ends", n), idle.heap, rawIdle.heap)
		b.r.pair("idle_rss_per_node_bytes", fmt.Sprintf("%d idle nodes: RSS per node, both ends", n), idle.rss, rawIdle.rss)
		for i := range idle.cpu {
			b.r.pair("idle_cpu_ms_per_s", fmt.Sprintf("%d idle nodes: CPU of the process (gateway and nodes)", n), idle.cpu[i], rawIdle.cpu[i])
		}
	}
	if b.opts.has(PhaseStorm) {
		rawStorm, err := b.rawStorm(ctx, raw)
		if err != nil {
			return fmt.Errorf("phase storm, raw quic-go baseline: %w", err)
		}
		for i := range storm.half {
			b.r.pair("storm_half_back_ms", fmt.Sprintf("storm, %d nodes: half back after the gateway's restart", n), storm.half[i], rawStorm.half[i])
			b.r.pair("storm_all_back_ms", fmt.Sprintf("storm, %d nodes: all back", n), storm.all[i], rawStorm.all[i])
			b.r.pair("storm_cpu_after_ms_per_s", fmt.Sprintf("storm, %d nodes: CPU of the process once all are back", n), storm.cpuAfter[i], rawStorm.cpuAfter[i])
		}
	}
	return nil
}

// palyraMany is many's Palyra side: a gateway and Nodes nodes, stopped
// when it returns.
func (b *run) palyraMany(ctx context.Context) (idle idleFigures, storm stormFigures, err error) {
	n := b.opts.Nodes
	before, err := readMemory()
	if err != nil && b.opts.has(PhaseIdle) {
		return idle, storm, fmt.Errorf("phase idle: %w", err)
	}
	dir, err := b.subdir("many")
	if err != nil {
		return idle, storm, err
	}
	gwOpts := b.gatewayOptions()
	gw, err := StartGateway(ctx, filepath.Join(dir, "gateway"), gwOpts)
	if err != nil {
		return idle, storm, err
	}
	defer func() {
		if serr := gw.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping the gateway: %w", serr)
		}
	}()
	fleet, err := b.startNodes(ctx, "many", n, gw, Connected)
	if err != nil {
		return idle, storm, err
	}
	defer fleet.Stop()
	if b.opts.has(PhaseIdle) {
		if idle, err = b.idle(ctx, before, n); err != nil {
			return idle, storm, fmt.Errorf("phase idle: %w", err)
		}
		if b.opts.IdleHeap != nil {
			runtime.GC() // the profile is as of the last collection
			if err := pprof.Lookup("heap").WriteTo(b.opts.IdleHeap, 0); err != nil {
				return idle, storm, fmt.Errorf("phase idle: writing the heap profile: %w", err)
			}
		}
	}
	if b.opts.has(PhaseStorm) {
		if storm, gw, err = b.storm(ctx, gw, gwOpts, fleet); err != nil {
			return idle, storm, fmt.Errorf("phase storm: %w", err)
		}
	}
	return idle, storm, nil
}

// idle measures, with n nodes (or raw clients) up, the memory grown since
// before, per node, once, and the CPU over IdleWindow, per repetition.
func (b *run) idle(ctx context.Context, before memory, n int) (idleFigures, error) {
	after, err := readMemory()
	if err != nil {
		return idleFigures{}, err
	}
	f := idleFigures{heap: perNode(before.heap, after.heap, n), rss: perNode(before.rss, after.rss, n)}
	for rep := range b.opts.Reps {
		cpu, err := cpuShare(ctx, b.opts.IdleWindow)
		if err != nil {
			return idleFigures{}, err
		}
		f.cpu = append(f.cpu, cpu)
		b.progress("idle %d/%d", rep+1, b.opts.Reps)
	}
	return f, nil
}

// storm restarts the gateway under its nodes Reps times, and times how
// long until half of them, and all, are connected again, while asking the
// admin API for the node list, then measures the CPU over IdleWindow. It
// returns the gateway it left running.
func (b *run) storm(ctx context.Context, gw *Gateway, o GatewayOptions, fleet *Fleet) (stormFigures, *Gateway, error) {
	var f stormFigures
	n := len(fleet.Agents)
	for rep := range b.opts.Reps {
		var back Back
		var err error
		// The restarted gateway's goroutines carry the label, so a CPU
		// profile of the run shows the storm apart (pprof -tagfocus).
		pprof.Do(ctx, pprof.Labels("phase", PhaseStorm), func(ctx context.Context) {
			back, err = RestartGateway(ctx, gw, o, fleet, nil)
		})
		gw = back.Gateway
		if err != nil {
			return f, gw, err
		}
		f.half = append(f.half, millis(back.Half))
		f.all = append(f.all, millis(back.All))
		cpu, err := cpuShare(ctx, b.opts.IdleWindow)
		if err != nil {
			return f, gw, err
		}
		f.cpuAfter = append(f.cpuAfter, cpu)
		b.r.add("storm_nodes_on_grpc", fmt.Sprintf("storm, %d nodes: nodes on gRPC once all are back", n), float64(back.OnGRPC))
		b.r.add("storm_old_gone_ms", "storm: the old gateway stopped, after it was told to", millis(back.OldGone))
		b.r.add("storm_admin_max_ms", "storm: slowest admin ListNodes while nodes come back", millis(back.AdminMax))
		b.r.add("storm_admin_failures", "storm: admin ListNodes calls that failed meanwhile", float64(back.AdminFailures))
		b.progress("storm %d/%d: all %d back in %v", rep+1, b.opts.Reps, n, back.All.Round(time.Millisecond))
	}
	return f, gw, nil
}

// Back is how a fleet came back after a gateway restart.
type Back struct {
	// Gateway is the restarted gateway (or the stopped one, if it could
	// not be started).
	Gateway *Gateway
	// Restarted is when the restart began (before gateway.New).
	Restarted time.Time
	// OldGone is how long the old gateway took to stop (its Run to
	// return once told to).
	OldGone time.Duration
	// Half and All are how long after Restarted half the nodes, and all,
	// were connected again.
	Half, All time.Duration
	// OnGRPC is how many nodes were on the gRPC fallback once all were
	// back.
	OnGRPC int
	// AdminMax is the slowest admin ListNodes answer meanwhile;
	// AdminFailures the calls that failed or took longer than 5 s.
	AdminMax      time.Duration
	AdminFailures int
	// AdminCalls is how many were made.
	AdminCalls int
}

// RestartGateway stops gw, waits for every node to notice, starts a
// gateway on the same directory and address, and waits until every node
// is connected to it, asking the admin API for the node list every
// 100 ms meanwhile. listed, if not nil, is given each answer.
func RestartGateway(ctx context.Context, gw *Gateway, o GatewayOptions, fleet *Fleet, listed func(*adminv1.ListNodesResponse)) (Back, error) {
	n := len(fleet.Agents)
	addr := gw.Addr()
	back := Back{Gateway: gw}
	stopping := time.Now()
	if err := gw.Stop(); err != nil {
		return back, fmt.Errorf("stopping the gateway: %w", err)
	}
	back.OldGone = time.Since(stopping)
	wctx, cancel := deadlineFor(ctx, stormWait)
	defer cancel()
	if err := fleet.Wait(wctx, "offline", func(st node.Status) bool { return st.State == node.StateConnected }, func(c int) bool { return c == 0 }); err != nil {
		return back, err
	}
	back.Restarted = time.Now()
	o.Listen = addr
	next, err := StartGateway(ctx, gw.Dir, o)
	if err != nil {
		return back, fmt.Errorf("restarting the gateway: %w", err)
	}
	back.Gateway = next
	probeCtx, stopProbe := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		probeAdmin(probeCtx, next, &back, listed)
	}()
	wctx, cancel = deadlineFor(ctx, stormWait+time.Duration(n)*stormWaitPerNode)
	defer cancel()
	sinceRestart := func(st node.Status) bool {
		return st.State == node.StateConnected && st.ConnectedSince.After(back.Restarted)
	}
	err = fleet.Wait(wctx, "half back", sinceRestart, func(c int) bool { return 2*c >= n })
	back.Half = time.Since(back.Restarted)
	if err == nil {
		err = fleet.WaitAll(wctx, "all back", sinceRestart)
		back.All = time.Since(back.Restarted)
	}
	stopProbe()
	<-probed
	back.OnGRPC = fleet.Count(func(st node.Status) bool {
		return st.State == node.StateConnected && st.Transport == wire.TransportGRPC
	})
	return back, err
}

// probeAdmin lists the nodes through the admin socket every
// adminProbeInterval until ctx ends, noting the slowest answer and the
// failures in back.
func probeAdmin(ctx context.Context, gw *Gateway, back *Back, listed func(*adminv1.ListNodesResponse)) {
	tick := time.NewTicker(adminProbeInterval)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, adminProbeTimeout)
		start := time.Now()
		resp, err := gw.Admin.ListNodes(cctx, &adminv1.ListNodesRequest{})
		took := time.Since(start)
		cancel()
		if ctx.Err() != nil {
			return
		}
		back.AdminCalls++
		back.AdminMax = max(back.AdminMax, took)
		if err != nil {
			back.AdminFailures++
		} else if listed != nil {
			listed(resp)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// rawStorm is storm for the raw baseline: the server closes its
// connections and listens again on the same address; the clients redial
// with the node's backoff.
func (b *run) rawStorm(ctx context.Context, raw *rawFleet) (stormFigures, error) {
	var f stormFigures
	n := len(raw.up)
	for rep := range b.opts.Reps {
		if err := raw.stopServer(); err != nil {
			return f, err
		}
		wctx, cancel := deadlineFor(ctx, stormWait+time.Duration(n)*stormWaitPerNode)
		if err := raw.wait(wctx, "disconnected", time.Time{}, func(c int) bool { return c == 0 }); err != nil {
			cancel()
			return f, err
		}
		restarted := time.Now()
		if err := raw.startServer(); err != nil {
			cancel()
			return f, err
		}
		err := raw.wait(wctx, "half back", restarted, func(c int) bool { return 2*c >= n })
		half := time.Since(restarted)
		if err == nil {
			err = raw.wait(wctx, "all back", restarted, func(c int) bool { return c == n })
		}
		cancel()
		if err != nil {
			return f, err
		}
		f.half = append(f.half, millis(half))
		f.all = append(f.all, millis(time.Since(restarted)))
		cpu, err := cpuShare(ctx, b.opts.IdleWindow)
		if err != nil {
			return f, err
		}
		f.cpuAfter = append(f.cpuAfter, cpu)
		b.progress("raw storm %d/%d", rep+1, b.opts.Reps)
	}
	return f, nil
}
