package oneinstance

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecondLaunchShowsTheFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "desktop.sock")
	ln, err := Acquire(path)
	if err != nil {
		t.Fatalf("first launch: %v", err)
	}
	shown := make(chan struct{}, 3)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, func() { shown <- struct{}{} }) }()

	for i := range 2 {
		if ln2, err := Acquire(path); !errors.Is(err, ErrRunning) || ln2 != nil {
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
	ln, err = Acquire(path)
	if err != nil {
		t.Fatalf("launch after the first quit: %v", err)
	}
	ln.Close()
}

// TestFirstDoesNotAnswer: a process that holds the socket but never says
// Shown is not taken for a running app; the second launch says so.
func TestFirstDoesNotAnswer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "desktop.sock")
	ln, err := Acquire(path)
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
	_, err = Acquire(path)
	if err == nil || errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), "did not show its window") {
		t.Fatalf("Acquire against a silent holder: %v", err)
	}
}
