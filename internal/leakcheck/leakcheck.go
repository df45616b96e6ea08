// Package leakcheck fails a test binary whose tests leave goroutines
// running: TestMain calls Main instead of m.Run.
package leakcheck

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// Main runs the tests and exits; when they pass (and -short is off) it
// then waits, bounded, for the goroutine count to fall back to what it was
// before, and fails with every goroutine's stack if it does not. A fuzzing
// run is not checked: the fuzzer's own goroutines outlive the tests.
func Main(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !testing.Short() && !fuzzing() {
		if err := check(before); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether this process runs a fuzz target with -fuzz, as
// the coordinator or as one of its workers.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

func check(before int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("leaked goroutines: %d before the tests, %d after:\n%s", before, n, buf)
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling the runtime, not waiting for the code under test
	}
}
