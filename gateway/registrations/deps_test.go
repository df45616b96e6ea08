package registrations_test

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

const module = "github.com/palyra/palyra-go/"

// The writer batches only: it knows nothing of carriers, networks or the
// GUI.
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Fence(t, golist.Deps(t), module+"gateway/quiccarrier", module+"gateway/grpccarrier", module+"gateway/carrier",
		module+"node", module+"app", "fyne.io/", "github.com/quic-go/", "google.golang.org/grpc")
}
