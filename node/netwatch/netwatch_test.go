package netwatch

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeClock is a clock the test moves: sleeping moves wall time only.
type fakeClock struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func (c *fakeClock) Wall() time.Time     { c.mu.Lock(); defer c.mu.Unlock(); return c.wall }
func (c *fakeClock) Mono() time.Duration { c.mu.Lock(); defer c.mu.Unlock(); return c.mono }
func (c *fakeClock) run(d time.Duration) {
	c.mu.Lock()
	c.wall, c.mono = c.wall.Add(d), c.mono+d
	c.mu.Unlock()
}
func (c *fakeClock) sleep(d time.Duration) { c.mu.Lock(); c.wall = c.wall.Add(d); c.mu.Unlock() }

// The clock check reports a sleep (wall time ahead of monotonic time by
// more than clockJumpLimit) once, and neither normal running nor a small
// step of the wall clock.
func TestClockJump(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := &fakeClock{wall: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		var slept []time.Duration
		var mu sync.Mutex
		go watchClock(t.Context(), time.Second, c, func(d time.Duration) { mu.Lock(); slept = append(slept, d); mu.Unlock() })
		step := func(f func()) {
			f()
			time.Sleep(time.Second)
			synctest.Wait()
		}
		step(func() { c.run(time.Second) })
		step(func() { c.run(time.Second); c.sleep(clockJumpLimit) }) // an NTP step, not sleep
		step(func() { c.run(time.Second); c.sleep(time.Hour) })
		step(func() { c.run(time.Second) })
		mu.Lock()
		defer mu.Unlock()
		if len(slept) != 1 || slept[0] != time.Hour {
			t.Errorf("reported sleeps %v, want one of 1h", slept)
		}
	})
}

// A burst is delivered as its first event at once and one more at the
// end of the window; a wake is never held back, and going to sleep ends
// the window.
func TestDebounce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		in, out := make(chan Event, 16), make(chan Event, 16)
		go debounce(t.Context(), in, out, debounceWindow)
		delivered := func(what string, want ...Kind) {
			t.Helper()
			synctest.Wait()
			var got []Kind
			for len(out) > 0 {
				got = append(got, (<-out).Kind)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: delivered %v, want %v", what, got, want)
			}
		}
		in <- Event{Kind: Network, Detail: "RTM_NEWADDR"}
		delivered("a burst's first event", Network)
		in <- Event{Kind: Network, Detail: "RTM_NEWROUTE"}
		in <- Event{Kind: Network, Detail: "RTM_NEWROUTE"}
		delivered("the rest of the burst, within the window")
		in <- Event{Kind: Wake, Detail: "logind"}
		delivered("a wake within the window", Wake)
		in <- Event{Kind: Network, Detail: "RTM_NEWLINK"}
		in <- Event{Kind: Wake, Detail: "clock"}
		delivered("a second wake within the window")
		time.Sleep(debounceWindow)
		delivered("the window's end", Network)
		time.Sleep(2 * debounceWindow)
		delivered("a quiet window")

		in <- Event{Kind: Wake, Detail: "logind"}
		delivered("a wake", Wake)
		in <- Event{Kind: Network, Detail: "RTM_NEWADDR"}
		in <- Event{Kind: asleep, Detail: "logind"}
		delivered("going to sleep within the window", Network)
		in <- Event{Kind: Wake, Detail: "logind"}
		delivered("the wake after the sleep", Wake)
		time.Sleep(2 * debounceWindow)
		delivered("a quiet window")
	})
}

func TestRouteChanges(t *testing.T) {
	t.Parallel()
	msg := func(typ byte, n int) []byte { b := make([]byte, n); b[0], b[2], b[3] = byte(n), 5, typ; return b }
	b := append(append(msg(rtmNewAddr, 20), msg(0x10, 8)...), msg(rtmDelete, 12)...)
	got := routeChanges(b)
	if len(got) != 2 || got[0] != "RTM_NEWADDR" || got[1] != "RTM_DELETE" {
		t.Errorf("routeChanges = %v", got)
	}
	if got := routeChanges(msg(rtmAdd, 20)[:10]); len(got) != 0 {
		t.Errorf("a truncated message gave %v", got)
	}
}

func FuzzRouteChanges(f *testing.F) {
	f.Add([]byte{12, 0, 5, rtmNewAddr, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) { routeChanges(b) })
}

// Every platform's watcher builds, without cgo; the Windows one, whose
// system calls cannot run here, is vetted too.
func TestCrossBuild(t *testing.T) {
	t.Parallel()
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	for _, target := range []struct {
		goos, goarch string
		args         []string
	}{
		{"windows", "amd64", []string{"build", "-o", os.DevNull, "."}},
		{"windows", "arm64", []string{"build", "-o", os.DevNull, "."}},
		{"windows", "amd64", []string{"vet", "."}},
		{"darwin", "arm64", []string{"build", "-o", os.DevNull, "."}},
		{"linux", "arm64", []string{"build", "-o", os.DevNull, "."}},
		{"freebsd", "amd64", []string{"build", "-o", os.DevNull, "."}},
	} {
		cmd := exec.Command(gobin, target.args...)
		cmd.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %s for %s/%s: %v\n%s", target.args[0], target.goos, target.goarch, err, out)
		}
	}
}

// next waits for an event of kind, skipping others, or fails at the
// deadline.
func next(t *testing.T, events <-chan Event, kind Kind) Event {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the watcher stopped")
			}
			if ev.Kind == kind {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("no %s event within 10 s", kind)
		}
	}
}
