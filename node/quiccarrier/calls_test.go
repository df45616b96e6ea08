package quiccarrier

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwait"
)

// goroutineID is the running goroutine's number, from its stack's first
// line ("goroutine 7 [running]:").
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := bytes.Cut(bytes.TrimPrefix(buf, []byte("goroutine ")), []byte(" "))
	return string(id)
}

// A call that comes while a worker waits runs on that worker, at most
// maxIdleCallWorkers wait, and all leave once done is closed.
func TestCallWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	w := callWorkers{work: make(chan func()), done: make(chan struct{})}

	ran := make(chan string, 1)
	w.run(func() { ran <- goroutineID() })
	first := testwait.Recv(t, ran, 10*time.Second, "the first call")
	waitIdle(t, &w, 1)
	w.run(func() { ran <- goroutineID() })
	if second := testwait.Recv(t, ran, 10*time.Second, "the second call"); second != first {
		t.Errorf("the second call ran on goroutine %s, not on the idle worker %s", second, first)
	}

	// More calls at once than may wait: the rest of the workers leave.
	release := make(chan struct{})
	var running sync.WaitGroup
	for range 3 * maxIdleCallWorkers {
		running.Add(1)
		w.run(func() { running.Done(); <-release })
	}
	running.Wait()
	close(release)
	waitIdle(t, &w, maxIdleCallWorkers)
	waitGoroutines(t, before+maxIdleCallWorkers)

	close(w.done)
	waitGoroutines(t, before)
}

func waitIdle(t *testing.T, w *callWorkers, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.idle.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers idle, want %d", w.idle.Load(), n)
		}
		runtime.Gosched()
	}
}

func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, want %d", runtime.NumGoroutine(), n)
		}
		runtime.Gosched()
	}
}
