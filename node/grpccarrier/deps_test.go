package grpccarrier

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// The node's gRPC carrier must not import the gateway or the GUI, must
// build without cgo, and must work where QUIC does not: no quic-go, and
// not the QUIC carrier.
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Forbid(t, "github.com/palyra/palyra-go/gateway", "github.com/palyra/palyra-go/app", "fyne.io/",
		"github.com/quic-go/", "github.com/palyra/palyra-go/node/quiccarrier")
}
