package quiccarrier_test

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// The gateway's QUIC carrier must not import the gRPC carrier, the node,
// the store or the GUI, and must build without cgo. (Its tests use the
// node's client.)
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Fence(t, golist.Deps(t),
		"github.com/palyra/palyra-go/gateway/grpccarrier",
		"github.com/palyra/palyra-go/node",
		"github.com/palyra/palyra-go/gateway/store",
		"github.com/palyra/palyra-go/app",
		"fyne.io/",
	)
}
