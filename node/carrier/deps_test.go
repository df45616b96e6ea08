package carrier

import (
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// What both carriers share must not bring either carrier's wire with it:
// no quic-go, no node carrier, no gateway or GUI, and it builds without
// cgo.
func TestImports(t *testing.T) {
	t.Parallel()
	golist.Forbid(t, "github.com/palyra/palyra-go/gateway", "github.com/palyra/palyra-go/app", "fyne.io/",
		"github.com/quic-go/", "github.com/palyra/palyra-go/node/quiccarrier", "github.com/palyra/palyra-go/node/grpccarrier")
}

// gRPC reaches this package only through the generated stubs beside the
// node protocol's messages (proto/node/v1): nothing else it depends on
// imports gRPC.
func TestNoGRPC(t *testing.T) {
	t.Parallel()
	const grpc, stubs = "google.golang.org/grpc", "github.com/palyra/palyra-go/proto/node/v1"
	out := golist.Run(t, "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".")
	checked := 0
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == stubs || strings.HasPrefix(f[0], grpc) {
			continue
		}
		checked++
		for _, imp := range f[1:] {
			if imp == grpc || strings.HasPrefix(imp, grpc+"/") {
				t.Errorf("%s imports %s", f[0], imp)
			}
		}
	}
	if checked == 0 {
		t.Fatalf("go list found no packages:\n%s", out)
	}
}
