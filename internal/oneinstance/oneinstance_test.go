package oneinstance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/palyra/palyra-go/internal/localsock"
	"github.com/palyra/palyra-go/internal/testwine"
)

func TestSecondLaunchShowsTheFirst(t *testing.T) {
	dir := filepath.Join(testwine.TempDir(t), "run")
	ln, err := Acquire(dir)
	if err != nil {
		t.Fatalf("first launch: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shown := make(chan struct{}, 3)
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, func() { shown <- struct{}{} }) }()

	for i := range 2 {
		if ln2, err := Acquire(dir); !errors.Is(err, ErrRunning) || ln2 != nil {
			t.Fatalf("launch %d while the first runs: %v, %v; want ErrRunning", i+2, ln2, err)
		}
		select {
		case <-shown:
		default:
			t.Fatalf("launch %d returned before the first showed its window", i+2)
		}
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop when its context ended")
	}

	// Once the first has quit, the next launch is the instance.
	ln, err = Acquire(dir)
	if err != nil {
		t.Fatalf("launch after the first quit: %v", err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
}

// holdLock takes dir's lock as another process would, until the test
// ends.
func holdLock(t *testing.T, dir string) {
	t.Helper()
	lock := flock.New(filepath.Join(dir, LockFile))
	if held, err := lock.TryLock(); !held || err != nil {
		t.Fatalf("taking the lock: %v, %v", held, err)
	}
	t.Cleanup(func() { lock.Close() })
}

// TestSecondLaunchWhileTheFirstStarts: a first launch that holds the lock
// but serves its endpoint only later (it is still starting) is waited for,
// not replaced: the second launch, begun in between, is shown the first's
// window once it serves.
func TestSecondLaunchWhileTheFirstStarts(t *testing.T) {
	dir := testwine.TempDir(t)
	holdLock(t, dir)
	waiting := make(chan struct{})
	var once sync.Once
	testHookWaiting = func() { once.Do(func() { close(waiting) }) }
	defer func() { testHookWaiting = func() {} }()
	second := make(chan error, 1)
	go func() {
		ln, err := Acquire(dir)
		if ln != nil {
			ln.Close()
		}
		second <- err
	}()
	select {
	case <-waiting:
	case err := <-second:
		t.Fatalf("the second launch returned before it found no endpoint: %v", err)
	}
	ln, err := localsock.Listen(filepath.Join(dir, EndpointFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shown := make(chan struct{}, 1)
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, func() { shown <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	select {
	case err := <-second:
		if !errors.Is(err, ErrRunning) {
			t.Fatalf("second launch while the first starts: %v; want ErrRunning", err)
		}
	case <-time.After(2 * answerTimeout):
		t.Fatal("the second launch did not return")
	}
	select {
	case <-shown:
	default:
		t.Fatal("the second launch returned before the first showed its window")
	}
}

// TestFirstDoesNotAnswer: a process that holds the lock and serves the
// endpoint but never says Shown is not taken for a running app; the second
// launch says so.
func TestFirstDoesNotAnswer(t *testing.T) {
	dir := testwine.TempDir(t)
	ln, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("what?\n"))
			c.Close()
		}
	}()
	_, err = Acquire(dir)
	if err == nil || errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), "did not show its window") {
		t.Fatalf("Acquire against a silent holder: %v", err)
	}
}

// TestFirstNeverServes: the lock's holder that never serves its endpoint
// (hung while starting) is reported, naming the lock, once answerTimeout
// has passed.
func TestFirstNeverServes(t *testing.T) {
	dir := testwine.TempDir(t)
	holdLock(t, dir)
	_, err := Acquire(dir)
	if err == nil || errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), "holds "+filepath.Join(dir, LockFile)+" but does not answer") {
		t.Fatalf("Acquire against a lock holder that serves nothing: %v", err)
	}
}

// TestLeftBehindEndpoint: an endpoint left by an app that crashed (the
// lock went with it) does not stop the next launch, which replaces it.
func TestLeftBehindEndpoint(t *testing.T) {
	dir := testwine.TempDir(t)
	path := filepath.Join(dir, EndpointFile)
	if err := os.WriteFile(path, []byte("left by a crash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := Acquire(dir)
	if err != nil {
		t.Fatalf("launch after a crash: %v", err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	c, err := localsock.Dial(ctx, path)
	if err != nil {
		t.Fatalf("the new instance's endpoint: %v", err)
	}
	c.Close()
}
