package cluster_test

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

const module = "github.com/palyra/palyra-go/"

// The cluster reaches the node runtime through its Local interface and the
// database through its Store one: it knows no carrier, dispatcher, node
// or GUI (the node protocol's messages come with its gRPC service, so gRPC is not fenced off).
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Fence(t, golist.Deps(t), module+"gateway/quiccarrier", module+"gateway/grpccarrier", module+"gateway/carrier",
		module+"gateway/dispatch", module+"gateway/admin", module+"node", module+"app", "fyne.io/")
}
