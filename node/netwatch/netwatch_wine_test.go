//go:build wine

package netwatch

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestNetwatchUnderWine runs the Windows subscriptions, built for Windows,
// under Wine, with the event mapping and debounce tests beside them.
func TestNetwatchUnderWine(t *testing.T) {
	testwine.TestPackage(t, "github.com/palyra/palyra-go/node/netwatch", "^Test(SystemSubscriptions|WindowsNotifications|CallbackSinks|Debounce|ClockJump)$", time.Minute)
}
