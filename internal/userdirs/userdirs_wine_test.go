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
	testwine.TestPackage(t, "github.com/palyra/palyra-go/internal/userdirs", "^Test", time.Minute)
}
