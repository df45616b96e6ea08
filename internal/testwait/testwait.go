// Package testwait waits on channels in tests, with a deadline, so that a
// missing event fails the test with a message instead of hanging it.
package testwait

import (
	"testing"
	"time"
)

// Recv returns the next value from c, or fails t after timeout naming
// what it waited for.
func Recv[T any](t testing.TB, c <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-c:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// None checks that nothing waits on c right now.
func None[T any](t testing.TB, c <-chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Errorf("unexpected %s: %v", what, v)
	default:
	}
}
