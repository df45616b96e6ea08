//go:build wine

package builtin_test

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestShellExecJobUnderWine runs this package's Windows shell.exec tests,
// built for Windows, under Wine: the command's job object kills its child
// and grandchild when the call is canceled, and when the call ends.
func TestShellExecJobUnderWine(t *testing.T) {
	testwine.TestPackage(t, "github.com/palyra/palyra-go/node/capability/builtin", "^TestShellExecTree", 2*time.Minute)
}
