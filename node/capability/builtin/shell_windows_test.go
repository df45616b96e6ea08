package builtin_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"

	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/testwine"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
)

// treeHelper, as the first argument, makes this test binary a process of
// the tree the tests below run through shell.exec (see runTreeHelper).
const treeHelper = "palyra-tree-helper"

// helperLife bounds how long a helper process lives by itself: far longer
// than a test waits for it to be killed. It then exits with livedOut.
const (
	helperLife = 2 * time.Minute
	livedOut   = 7
)

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == treeHelper {
		os.Exit(runTreeHelper(os.Args[2], os.Args[3]))
	}
	os.Exit(m.Run())
}

// runTreeHelper is one process of a three-generation tree: "parent" (or
// "parent-exits") starts "child", which starts "grandchild"; each of the
// last two writes its PID into dir for the test. "parent-exits" exits 0
// once the grandchild is there; the others live for helperLife and exit
// livedOut.
func runTreeHelper(role, dir string) int {
	start := func(next, pidFile string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], treeHelper, next, dir)
		if err := cmd.Start(); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		if pidFile != "" {
			tmp := filepath.Join(dir, pidFile+".tmp")
			_ = os.WriteFile(tmp, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
			_ = os.Rename(tmp, filepath.Join(dir, pidFile))
		}
		return cmd
	}
	switch role {
	case "parent", "parent-exits":
		start("child", "child.pid")
		if role == "parent-exits" {
			deadline := time.Now().Add(helperLife)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(filepath.Join(dir, "grandchild.pid")); err == nil {
					return 0
				}
				time.Sleep(10 * time.Millisecond)
			}
			return 4
		}
	case "child":
		start("grandchild", "grandchild.pid")
	case "grandchild":
	default:
		return 2
	}
	time.Sleep(helperLife)
	return livedOut
}

// TestShellExecTreeCanceled: canceling a call kills the command's whole
// tree, its child and grandchild included, since they are in its job.
func TestShellExecTreeCanceled(t *testing.T) {
	r, exe, dir := treeSetup(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := r.Invoke(ctx, "shell.exec", capability.Call{Args: treeArgs(t, exe, "parent", dir)})
		done <- err
	}()
	child, grandchild := openPID(t, dir, "child.pid"), openPID(t, dir, "grandchild.pid")
	cancel()
	wantError(t, testwait.Recv(t, done, 30*time.Second, "the canceled call's end"), capability.CodeCanceled, "the call was canceled")
	// TerminateJobObject's exit code.
	wantKilled(t, child, "child", 1)
	wantKilled(t, grandchild, "grandchild", 1)
}

// TestShellExecTreeEndsWithCall: a command that exits by itself, leaving
// its descendants running, takes them with it when the call ends, since
// the job is closed.
func TestShellExecTreeEndsWithCall(t *testing.T) {
	r, exe, dir := treeSetup(t)
	raw, err := r.Invoke(t.Context(), "shell.exec", capability.Call{Args: treeArgs(t, exe, "parent-exits", dir)})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ExitCode int `json:"exit_code"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ExitCode != 0 {
		t.Fatalf("the command's result %s (%v), want exit code 0", raw, err)
	}
	// Whatever exit code closing the job gives (Wine's is 0), only not
	// the one of a helper that lived out its life.
	wantKilled(t, openPID(t, dir, "child.pid"), "child", -1)
	wantKilled(t, openPID(t, dir, "grandchild.pid"), "grandchild", -1)
}

func treeSetup(t *testing.T) (*capability.Registry, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return newRegistry(t, builtin.Config{ShellAllow: []string{exe}}), exe, testwine.TempDir(t)
}

func treeArgs(t *testing.T, exe, role, dir string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{"command": exe, "args": []string{treeHelper, role, dir}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openPID waits for the helper's PID file in dir and opens the process,
// so that its PID cannot be reused while the test looks at it.
func openPID(t *testing.T, dir, name string) windows.Handle {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			h, err := windows.OpenProcess(windows.SYNCHRONIZE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
			if err != nil {
				t.Fatalf("opening process %d (%s): %v", pid, name, err)
			}
			t.Cleanup(func() { windows.CloseHandle(h) })
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in %s after 30 s", name, dir)
		}
		<-tick.C
	}
}

// wantKilled waits, bounded, for the process to end, and checks that it
// did not end by itself (livedOut) and, unless want is -1, that its exit
// code is want.
func wantKilled(t *testing.T, h windows.Handle, what string, want int) {
	t.Helper()
	ev, err := windows.WaitForSingleObject(h, 30_000)
	if err != nil || ev != windows.WAIT_OBJECT_0 {
		t.Fatalf("the %s is still running 30 s after the call ended (%#x, %v)", what, ev, err)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		t.Fatal(err)
	}
	if code == livedOut || (want >= 0 && code != uint32(want)) {
		t.Errorf("the %s exited with %d, want %d (ended with its job)", what, code, want)
	}
}
