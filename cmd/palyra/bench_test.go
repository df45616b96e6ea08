package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchJSON runs a short `palyra bench` of the latency and grpc
// phases: its JSON has every figure of both, beside its baseline and
// ratio, each positive.
func TestBenchJSON(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	rc, out, errOut := c.run(nil, "", "bench", "--phases", "latency,grpc", "--reps", "1", "--calls", "50", "--json")
	if rc != 0 {
		t.Fatalf("palyra bench: exit %d\nstdout: %s\nstderr: %s", rc, out, errOut)
	}
	if !strings.Contains(errOut, "bench: phase latency") || !strings.Contains(errOut, "bench: phase grpc") {
		t.Errorf("no progress on standard error: %q", errOut)
	}
	var got map[string]float64
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("palyra bench --json printed %q: %v", out, err)
	}
	for _, figure := range []string{"invoke_p50_us", "invoke_p99_us", "invoke_allocs", "invoke_alloc_bytes",
		"grpc_invoke_p50_us", "grpc_invoke_p99_us", "grpc_invoke_allocs", "grpc_invoke_alloc_bytes"} {
		ratio := "ratio_" + strings.TrimSuffix(strings.TrimSuffix(figure, "_us"), "_bytes")
		for _, key := range []string{figure, "baseline_" + figure, ratio} {
			if v, ok := got[key]; !ok || v <= 0 {
				t.Errorf("%s is %v (present: %v) in %s", key, v, ok, out)
			}
		}
	}
}

// TestBenchUsage: a phase that does not exist is a usage error that
// names the phases.
func TestBenchUsage(t *testing.T) {
	t.Parallel()
	rc, _, errOut := newCLI(t).run(nil, "", "bench", "--phases", "latency,nope")
	if rc != 2 || !strings.Contains(errOut, `unknown phase "nope"`) || !strings.Contains(errOut, "throughput") {
		t.Errorf("palyra bench --phases latency,nope: exit %d, stderr %q", rc, errOut)
	}
}

// TestBenchClusterNeedsDatabase: forward and revocation without
// --database are a usage error that names the flag.
func TestBenchClusterNeedsDatabase(t *testing.T) {
	t.Parallel()
	for _, phase := range []string{"forward", "revocation"} {
		rc, _, errOut := newCLI(t).run(nil, "", "bench", "--phases", phase)
		if rc != 2 || !strings.Contains(errOut, "phase "+phase) || !strings.Contains(errOut, "--database postgres://") {
			t.Errorf("palyra bench --phases %s: exit %d, stderr %q", phase, rc, errOut)
		}
	}
}

// TestBenchIdleHeapProfile: --idleheapprofile writes a heap profile of
// the idle nodes, and without the phase idle it is a usage error.
func TestBenchIdleHeapProfile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "idle.pprof")
	rc, out, errOut := newCLI(t).run(nil, "", "bench", "--phases", "idle", "--nodes", "3", "--reps", "1", "--idle-window", "10ms", "--idleheapprofile", file, "--json")
	if rc != 0 {
		t.Fatalf("palyra bench --phases idle --idleheapprofile: exit %d\nstdout: %s\nstderr: %s", rc, out, errOut)
	}
	p, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// A profile is gzip-compressed protocol buffers.
	if len(p) < 100 || p[0] != 0x1f || p[1] != 0x8b {
		t.Errorf("the heap profile is not one: %d bytes starting %x", len(p), p[:min(len(p), 4)])
	}
	rc, _, errOut = newCLI(t).run(nil, "", "bench", "--phases", "latency", "--idleheapprofile", file)
	if rc != 2 || !strings.Contains(errOut, "needs the phase idle") {
		t.Errorf("palyra bench --phases latency --idleheapprofile: exit %d, stderr %q", rc, errOut)
	}
}
