package builtin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
)

// TestShellExecKillsChildren: a command that is stopped takes its
// children with it, because the whole process group is killed. The script
// records its child before it floods its output, so the output limit
// stops it only once the child is known (a timeout could strike first on
// a loaded machine); timeouts stop commands the same way.
func TestShellExecKillsChildren(t *testing.T) {
	t.Parallel()
	sh := program(t, "sh")
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	r := newRegistry(t, builtin.Config{ShellAllow: []string{sh}, ShellMaxOutput: 1000})
	script := fmt.Sprintf(`sleep 30 & echo $! > %s; while :; do echo flood; done`, pidFile)
	var got shellResult
	wantError(t, invoke(t, r, "shell.exec", fmt.Sprintf(`{"command":%q,"args":["-c",%q]}`, sh, script), &got),
		capability.CodeOutputTooLarge)

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The child is not ours to wait for; a pidfd becomes readable when it
	// exits. Ten seconds is far beyond a SIGKILL and far below the 30 s
	// the child would otherwise live.
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return // already gone and reaped
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for range 100 { // poll again only when a signal interrupts it
		n, err := unix.Poll(fds, 10_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if n == 0 {
			t.Fatalf("child %d still running after its command was killed", pid)
		}
		return
	}
	t.Fatal("poll interrupted too often")
}
