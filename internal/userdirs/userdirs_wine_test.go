//go:build wine

package userdirs

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestDirsUnderWine runs this package's tests, built for Windows, under
// Wine: every OS's answers computed on Windows (its path separator), and
// the endpoint record.
func TestDirsUnderWine(t *testing.T) {
	exe := testwine.BuildTest(t, "github.com/palyra/palyra-go/internal/userdirs")
	w := testwine.New(t)
	t.Log(w.RunTests(t, exe, "^Test", time.Minute))
}
