//go:build wine

package localsock

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestTokenEndpointUnderWine runs this package's tests, built for Windows,
// under Wine: the token endpoint over Wine's loopback TCP. Not
// TestEndpointFileACL: Wine keeps no file ACLs (it answers with one made up
// from the Unix mode bits, and a DACL naming only this user changes
// nothing), so that test is for a real Windows.
func TestTokenEndpointUnderWine(t *testing.T) {
	testwine.TestPackage(t, "github.com/palyra/palyra-go/internal/localsock", "^(TestToken|TestParseEndpoint|TestListenIsTokenEndpoint)", 2*time.Minute)
}
