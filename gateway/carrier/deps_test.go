package carrier_test

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// What both carriers share must not depend on either carrier, the store,
// the node or the GUI, and must build without cgo; nor may it use a wire
// (quic-go, gRPC) itself. (The protocol's messages, proto/node/v1, come
// with their gRPC stubs, so gRPC is among its dependencies.)
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Fence(t, golist.Deps(t),
		"github.com/palyra/palyra-go/gateway/quiccarrier",
		"github.com/palyra/palyra-go/gateway/grpccarrier",
		"github.com/quic-go/",
		"github.com/palyra/palyra-go/gateway/store",
		"github.com/palyra/palyra-go/node",
		"github.com/palyra/palyra-go/app",
		"fyne.io/",
	)
	golist.Fence(t, golist.Imports(t), "google.golang.org/grpc")
}
