package testpg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// When the test binary dies without stopping its server, the server stops
// by itself and its directory goes: a test binary killed by a timeout
// leaves nothing running.
func TestServerDiesWithTestBinary(t *testing.T) {
	if os.Getenv("TESTPG_CHILD") == "1" {
		New(t)
		pm, err := os.ReadFile(filepath.Join(running.dir, "data", "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		postmaster, _, _ := strings.Cut(string(pm), "\n")
		fmt.Printf("SERVER %d %s %s\n", running.cmd.Process.Pid, postmaster, running.dir)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // dies here, Main never runs its stop
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTestBinary$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTPG_CHILD=1")
	out, _ := cmd.Output() // killed: an error, expected
	var watchdog, postmaster int
	var dir string
	for line := range strings.SplitSeq(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "SERVER %d %d %s", &watchdog, &postmaster, &dir); err == nil {
			break
		}
	}
	if watchdog == 0 || postmaster == 0 || dir == "" {
		t.Fatalf("the child said nothing of its server: %s", out)
	}
	waitExit(t, postmaster, "the postmaster of the dead test binary")
	waitExit(t, watchdog, "the watchdog of the dead test binary")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the server's directory %s is still there: %v", dir, err)
	}
}

// waitExit waits (with a deadline) for process pid to exit, on a pidfd.
func waitExit(t *testing.T, pid int, what string) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return // gone already
	}
	if err != nil {
		t.Fatalf("watching %s: %v", what, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int((30 * time.Second).Milliseconds()))
	if err != nil || n == 0 {
		t.Fatalf("%s (pid %d) still runs after 30s (%v)", what, pid, err)
	}
}
