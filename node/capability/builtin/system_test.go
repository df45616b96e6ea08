package builtin_test

import (
	"os"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
)

type systemInfo struct {
	Hostname         string  `json:"hostname"`
	OS               string  `json:"os"`
	Arch             string  `json:"arch"`
	NumCPU           int     `json:"num_cpu"`
	PalyraVersion    string  `json:"palyra_version"`
	GoVersion        string  `json:"go_version"`
	Kernel           string  `json:"kernel"`
	UptimeSeconds    *int64  `json:"uptime_seconds"`
	MemoryTotalBytes *uint64 `json:"memory_total_bytes"`
	User             string  `json:"user"`
}

func TestSystemInfo(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, builtin.Config{Version: "1.2.3-test"})

	uptimeBefore := procUptime(t)
	var got systemInfo
	if err := invoke(t, r, "system.info", `{}`, &got); err != nil {
		t.Fatalf("system.info: %v", err)
	}
	uptimeAfter := procUptime(t)

	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	want := systemInfo{
		Hostname:      host,
		OS:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		NumCPU:        runtime.NumCPU(),
		PalyraVersion: "1.2.3-test",
		GoVersion:     runtime.Version(),
		User:          u.Username,
		Kernel:        got.Kernel,
	}
	if runtime.GOOS == "linux" {
		want.Kernel = readProc(t, "/proc/sys/kernel/osrelease")
	}
	if g, w := strip(got), strip(want); g != w {
		t.Errorf("system.info = %+v\nwant %+v", g, w)
	}

	if runtime.GOOS != "linux" {
		return
	}
	if got.UptimeSeconds == nil || *got.UptimeSeconds < uptimeBefore || *got.UptimeSeconds > uptimeAfter {
		t.Errorf("uptime_seconds = %v, want between %d and %d (from /proc/uptime)", got.UptimeSeconds, uptimeBefore, uptimeAfter)
	}
	if want := procMemTotal(t); got.MemoryTotalBytes == nil || *got.MemoryTotalBytes != want {
		t.Errorf("memory_total_bytes = %v, want %d (from /proc/meminfo)", got.MemoryTotalBytes, want)
	}
}

// TestSystemInfoRefusesArguments: it takes none.
func TestSystemInfoRefusesArguments(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, builtin.Config{})
	var got systemInfo
	wantError(t, invoke(t, r, "system.info", `{"verbose":true}`, &got), capability.CodeInvalidArgs, `unknown argument "verbose"`)
}

// strip drops the pointer fields, compared separately.
func strip(s systemInfo) systemInfo {
	s.UptimeSeconds, s.MemoryTotalBytes = nil, nil
	return s
}

func readProc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// procUptime reads whole seconds from /proc/uptime; 0 off Linux.
func procUptime(t *testing.T) int64 {
	if runtime.GOOS != "linux" {
		return 0
	}
	secs, _, _ := strings.Cut(readProc(t, "/proc/uptime"), ".")
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func procMemTotal(t *testing.T) uint64 {
	for line := range strings.Lines(readProc(t, "/proc/meminfo")) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}
