package localgw

import (
	"slices"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// The local gateway is the desktop app's engine, not its UI: it must not
// import the GUI (fyne, the rest of app/) and must build without cgo, so
// `palyra-desktop --headless-gateway` and its tests run anywhere.
func TestImports(t *testing.T) {
	t.Parallel()
	const self = "github.com/palyra/palyra-go/app/localgw"
	for _, dep := range golist.Deps(t) {
		if dep != self && strings.HasPrefix(dep, "github.com/palyra/palyra-go/app") ||
			strings.HasPrefix(dep, "fyne.io/") || strings.HasPrefix(dep, "github.com/go-gl/") {
			t.Errorf("app/localgw depends on %s", dep)
		}
	}
}

// notImported are packages that app/ and app/localgw reach only through
// package gateway's Go API: the admin protocol and gRPC statuses. The
// carriers of node sessions (golist.IsCarrier) are refused too.
var notImported = []string{
	"google.golang.org/grpc/status",
	"github.com/palyra/palyra-go/proto/admin/v1",
}

// TestGatewayThroughGoAPI: the desktop app administers its local gateway
// with gateway.Gateway's methods and Go errors, not the admin socket's
// protocol, and leaves node sessions to node.Agent and the gateway.
func TestGatewayThroughGoAPI(t *testing.T) {
	t.Parallel()
	out := golist.Run(t, "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../...")
	checked := 0
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		checked++
		for _, imp := range f[1:] {
			if slices.Contains(notImported, imp) || golist.IsCarrier(imp) {
				t.Errorf("%s imports %s", f[0], imp)
			}
		}
	}
	if checked < 2 {
		t.Fatalf("go list found no packages in app/ and app/localgw:\n%s", out)
	}
}
