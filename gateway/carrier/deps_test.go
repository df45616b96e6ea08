package carrier_test

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

const module = "github.com/palyra/palyra-go/"

// What a gateway carrier may not depend on: the node, the store, the GUI.
// All build without cgo. (The carriers' tests use the node's client.)
var carrierFence = []string{module + "node", module + "gateway/store", module + "app", "fyne.io/"}

// The two carriers do not import each other.
func TestCarrierImports(t *testing.T) {
	t.Parallel()
	for pkg, other := range map[string]string{
		"gateway/quiccarrier": "gateway/grpccarrier",
		"gateway/grpccarrier": "gateway/quiccarrier",
	} {
		t.Run(pkg, func(t *testing.T) {
			t.Parallel()
			golist.Fence(t, golist.DepsOf(t, module+pkg), append(carrierFence, module+other)...)
		})
	}
}

// What both carriers share depends on neither carrier nor uses a wire
// (quic-go, gRPC) itself. (The protocol's messages, proto/node/v1, come
// with their gRPC stubs, so gRPC is among its dependencies.)
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Fence(t, golist.Deps(t), append(carrierFence,
		module+"gateway/quiccarrier", module+"gateway/grpccarrier", "github.com/quic-go/")...)
	golist.Fence(t, golist.Imports(t), "google.golang.org/grpc")
}
