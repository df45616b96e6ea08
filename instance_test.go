package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecondLaunchUnderXvfb starts the real binary, hides its window (as a
// person would by minimising it), then launches it again with the same
// config dir: the second process exits 0 saying the app runs, the first
// shows its window again, and only one palyra-desktop is left.
func TestSecondLaunchUnderXvfb(t *testing.T) {
	d := newDesktop(t)
	cfgDir := filepath.Join(d.dir, "home", "config", "palyra", "node")
	args := []string{"--config-dir", cfgDir}

	first := d.start("first", args...)
	win := d.window("Palyra")
	d.xdotool("windowunmap", "--sync", win)
	if ids, err := d.windows("Palyra"); err != nil || len(ids) != 0 {
		t.Fatalf("the window is still visible after unmapping it: %v, %v", ids, err)
	}

	second := d.start("second", args...)
	select {
	case <-second.done:
		if second.err != nil {
			t.Fatalf("the second launch exited with %v:\n%s", second.err, second.log())
		}
	case <-time.After(stepDeadline):
		t.Fatalf("the second launch still runs after %s:\n%s", stepDeadline, second.log())
	}
	if !strings.Contains(second.log(), "palyra-desktop is already running for "+cfgDir) {
		t.Errorf("the second launch did not say the app runs:\n%s", second.log())
	}
	if strings.Contains(second.log(), "palyra-desktop running") {
		t.Errorf("the second launch started a UI and an agent of its own:\n%s", second.log())
	}
	if got := d.window("Palyra"); got != win {
		t.Errorf("visible window %s, want the first app's %s", got, win)
	}
	select {
	case <-first.done:
		t.Fatalf("the first app quit:\n%s", first.log())
	default:
	}
	if n := processesOf(t, d.bin); n != 1 {
		t.Errorf("%d palyra-desktop processes run, want 1", n)
	}
	d.screenshot("second-launch")
	first.stop()
}

// processesOf counts the running processes of the executable bin.
func processesOf(t *testing.T, bin string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == bin {
			n++
		}
	}
	return n
}
