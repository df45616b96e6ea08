//go:build wine

package autostart

import (
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestRunKeyUnderWine runs this package's Run key tests, built for
// Windows, under Wine, and checks that they left nothing in the prefix's
// registry.
func TestRunKeyUnderWine(t *testing.T) {
	w := testwine.TestPackage(t, "github.com/palyra/palyra-go/app/autostart", "^(TestRunKey|TestForAppIsRunKey)", time.Minute)
	w.RestartServer(t)
	if reg := w.UserRegistry(t); strings.Contains(reg, `"Palyra test `) {
		t.Error("a test value is left under the Run key")
	}
}
