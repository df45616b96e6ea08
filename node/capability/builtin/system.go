package builtin

import (
	"context"
	"encoding/json"
	"os"
	"os/user"
	"runtime"

	"github.com/palyra/palyra-go/node/capability"
)

// noArgs is the schema of a capability that takes no arguments.
const noArgs = `{"type":"object","additionalProperties":false}`

// systemInfoOutput is what system.info reports. Fields a platform cannot
// give without cgo are left out rather than guessed.
type systemInfoOutput struct {
	Hostname      string `json:"hostname"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	NumCPU        int    `json:"num_cpu"`
	PalyraVersion string `json:"palyra_version"`
	GoVersion     string `json:"go_version"`
	Kernel        string `json:"kernel,omitempty"`
	// UptimeSeconds is whole seconds since boot.
	UptimeSeconds    *int64  `json:"uptime_seconds,omitempty"`
	MemoryTotalBytes *uint64 `json:"memory_total_bytes,omitempty"`
	User             string  `json:"user,omitempty"`
}

func systemInfo(cfg func() Config) capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:           "system.info",
			Description:    "Report this computer's name, operating system, architecture, CPUs, memory, uptime and palyra version.",
			Label:          "Read system information",
			Schema:         json.RawMessage(noArgs),
			Privacy:        capability.PrivacyLow,
			DefaultEnabled: true,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			return marshal(readSystemInfo(ctx, cfg().Version))
		},
	}
}

func readSystemInfo(ctx context.Context, version string) systemInfoOutput {
	if version == "" {
		version = "unknown"
	}
	out := systemInfoOutput{
		OS:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		NumCPU:        runtime.NumCPU(),
		PalyraVersion: version,
		GoVersion:     runtime.Version(),
	}
	// Each fact is best effort: one that cannot be read is left out, and
	// the rest are still worth reporting.
	out.Hostname, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		out.User = u.Username
	}
	if k, ok := kernelRelease(ctx); ok {
		out.Kernel = k
	}
	if s, ok := uptimeSeconds(ctx); ok {
		out.UptimeSeconds = &s
	}
	if m, ok := memoryTotal(ctx); ok {
		out.MemoryTotalBytes = &m
	}
	return out
}
