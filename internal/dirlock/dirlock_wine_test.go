//go:build wine

package dirlock

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestDirLockUnderWine runs this package's tests, built for Windows, under
// Wine: the lock is LockFileEx there, which, unlike flock, also keeps
// other handles from reading and writing the bytes it covers.
func TestDirLockUnderWine(t *testing.T) {
	testwine.TestPackage(t, "github.com/palyra/palyra-go/internal/dirlock", "^Test", time.Minute)
}
