package presence_test

import (
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

const module = "github.com/palyra/palyra-go/"

// The tracker batches only: it reaches the store through its interface,
// and knows nothing of carriers, networks or the GUI.
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Fence(t, golist.Deps(t), module+"gateway/store", module+"gateway/quiccarrier", module+"gateway/grpccarrier",
		module+"node", module+"app", "fyne.io/", "github.com/quic-go/", "google.golang.org/grpc")
}
