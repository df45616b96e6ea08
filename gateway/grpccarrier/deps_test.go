package grpccarrier_test

import (
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// The gateway's carrier must not import the node, the store or the GUI,
// and must build without cgo. (Its tests use the node's client.)
func TestImports(t *testing.T) {
	t.Parallel()
	for _, dep := range golist.Deps(t) {
		if strings.HasPrefix(dep, "github.com/palyra/palyra-go/node") ||
			strings.HasPrefix(dep, "github.com/palyra/palyra-go/gateway/store") ||
			strings.HasPrefix(dep, "github.com/palyra/palyra-go/app") ||
			strings.HasPrefix(dep, "fyne.io/") {
			t.Errorf("gateway/grpccarrier depends on %s", dep)
		}
	}
}
