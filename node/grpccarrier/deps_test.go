package grpccarrier

import (
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// The node's carrier must not import the gateway or the GUI, and must
// build without cgo.
func TestImports(t *testing.T) {
	t.Parallel()
	for _, dep := range golist.Deps(t) {
		if strings.HasPrefix(dep, "github.com/palyra/palyra-go/gateway") ||
			strings.HasPrefix(dep, "github.com/palyra/palyra-go/app") ||
			strings.HasPrefix(dep, "fyne.io/") {
			t.Errorf("node/grpccarrier depends on %s", dep)
		}
	}
}
