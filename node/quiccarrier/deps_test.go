package quiccarrier

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// The node's QUIC carrier must not import the gRPC carrier, the gateway or
// the GUI, and must build without cgo.
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Forbid(t, "github.com/palyra/palyra-go/gateway", "github.com/palyra/palyra-go/app", "fyne.io/",
		"github.com/palyra/palyra-go/node/grpccarrier")
}
