package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/internal/bench"
)

func cmdBench(env *environment) *cobra.Command {
	c := leaf("bench", "measure a gateway and its nodes on loopback, beside raw quic-go and grpc-go", 0, 0)
	c.Long = `bench measures the gateway the way it runs, in this process: the real gateway
with its SQLite store in a temporary directory and real nodes paired through
the real flow, on loopback only. Each figure is measured beside its raw
quic-go or grpc-go baseline in the same run, and printed as the median
[min–max] over --reps repetitions with the ratio of the medians.

Phases: latency (sequential calls), throughput (calls in flight on many
nodes, then on one), pairing, grpc (a node on the gRPC fallback), idle
(--nodes idle nodes: memory per node, CPU) and storm (the gateway restarted
under --nodes nodes: how long until half and all are back). The nodes share
one UDP socket.

Two phases run two gateways, A and B, on the PostgreSQL database --database
names (they are not run by default, and refuse to run without it): forward
(p50 and p99 of calls made through A for a node held by B, forwarded over
the gateways' QUIC connection, beside the same calls made on B directly)
and revocation (--revocations nodes on B revoked through A, one at a time:
the least, median and greatest time from the call on A until B has closed
the node's session, beside a NOTIFY from one connection to another). They
leave the devices they pair in the database: give them one of their own.`
	d := bench.Defaults
	fs := c.Flags()
	phases := fs.String("phases", strings.Join(d.Phases, ","), "the phases to run, comma-separated: "+strings.Join(bench.Phases, ", "))
	opts := &d
	fs.IntVar(&opts.Reps, "reps", d.Reps, "repetitions of each figure")
	fs.IntVar(&opts.Calls, "calls", d.Calls, "sequential calls in one repetition of latency and grpc")
	fs.DurationVar(&opts.Window, "window", d.Window, "how long one repetition of throughput runs")
	fs.IntVar(&opts.ThroughputNodes, "throughput-nodes", d.ThroughputNodes, "nodes throughput calls at once")
	fs.IntVar(&opts.InFlight, "in-flight", d.InFlight, "calls in flight to each of those nodes")
	fs.IntVar(&opts.OneNodeInFlight, "one-node-in-flight", d.OneNodeInFlight, "calls in flight to one node, after that")
	fs.IntVar(&opts.Pairings, "pairings", d.Pairings, "devices that pair in one repetition of pairing")
	fs.IntVar(&opts.Nodes, "nodes", d.Nodes, "nodes idle and storm hold")
	fs.DurationVar(&opts.IdleWindow, "idle-window", d.IdleWindow, "how long one repetition of idle measures CPU")
	fs.StringVar(&opts.Database, "database", "", "postgres:// URL of the database forward and revocation run their gateways on (a scratch one: they leave their devices there; a password belongs in PGPASSWORD or ~/.pgpass, not here)")
	fs.IntVar(&opts.Revocations, "revocations", d.Revocations, "nodes revoked, one at a time, in one repetition of revocation")
	fs.BoolVar(&opts.DefaultLimits, "default-limits", false, "keep the gateway's per-source caps on pairing and QUIC handshakes (every node dials from 127.0.0.1)")
	fs.DurationVar(&opts.Timeout, "timeout", d.Timeout, "give up after this long")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (gateway and nodes: one process) to this file, for go tool pprof; the restarted gateways of storm carry the label phase=storm (pprof -tagfocus phase=storm)")
	mutexProfile := fs.String("mutexprofile", "", "write a profile of the lock contention during the run to this file")
	idleHeap := fs.String("idleheapprofile", "", "write a heap profile to this file while idle's nodes are up (phase idle)")
	asJSON := fs.Bool("json", false, "print the medians as JSON (keys: figure names with _us, _ms, _per_s, _bytes; baseline_ and ratio_ before them)")
	c.RunE = func(c *cobra.Command, _ []string) (err error) {
		opts.Phases = nil
		for p := range strings.SplitSeq(*phases, ",") {
			if p = strings.TrimSpace(p); p != "" {
				opts.Phases = append(opts.Phases, p)
			}
		}
		if err := opts.Validate(); err != nil {
			return usageError{err}
		}
		opts.Progress = env.stderr
		if *idleHeap != "" {
			if !slices.Contains(opts.Phases, bench.PhaseIdle) {
				return usageError{errors.New("--idleheapprofile needs the phase idle")}
			}
			f, ferr := os.Create(*idleHeap)
			if ferr != nil {
				return fmt.Errorf("creating the heap profile: %w", ferr)
			}
			defer func() {
				if cerr := f.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("writing the heap profile: %w", cerr)
				}
			}()
			opts.IdleHeap = f
		}
		stopProfiles, err := startProfiles(*cpuProfile, *mutexProfile)
		if err != nil {
			return err
		}
		r, err := bench.Run(c.Context(), *opts)
		if perr := stopProfiles(); perr != nil && err == nil {
			return perr
		}
		if err != nil {
			if r != nil && len(r.Figures) > 0 && !*asJSON {
				fmt.Fprintln(env.stderr, "measured before the failure:")
				_ = r.WriteTable(env.stderr)
			}
			return fmt.Errorf("benchmarking: %w", err)
		}
		if *asJSON {
			return writeJSON(env.stdout, r.JSON())
		}
		return r.WriteTable(env.stdout)
	}
	return c
}

// startProfiles starts the profiles asked for (no file: not that one);
// stop writes them.
func startProfiles(cpuFile, mutexFile string) (stop func() error, err error) {
	var cpu *os.File
	if cpuFile != "" {
		if cpu, err = os.Create(cpuFile); err != nil {
			return nil, fmt.Errorf("creating the CPU profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("starting the CPU profile: %w", err)
		}
	}
	if mutexFile != "" {
		runtime.SetMutexProfileFraction(10)
	}
	return func() error {
		var err error
		if cpu != nil {
			pprof.StopCPUProfile()
			err = cpu.Close()
		}
		if mutexFile != "" {
			err = errors.Join(err, writeProfile("mutex", mutexFile))
		}
		return err
	}, nil
}

func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("creating the %s profile: %w", name, err)
	}
	err = pprof.Lookup(name).WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the %s profile: %w", name, err)
	}
	return nil
}
