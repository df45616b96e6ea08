//go:build wine

package oneinstance

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestOneInstanceUnderWine runs this package's tests, built for Windows,
// under Wine: the lock file (LockFileEx) and the endpoint file with its
// loopback port and token, where Wine has no Unix sockets. Between two
// processes it is the desktop app's TestDesktopUnderWine that checks it.
func TestOneInstanceUnderWine(t *testing.T) {
	testwine.TestPackage(t, "github.com/palyra/palyra-go/internal/oneinstance", "^(TestSecondLaunch|TestFirst|TestLeftBehind)", 2*time.Minute)
}
