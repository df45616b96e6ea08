package localgw

import (
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

// The local gateway drives the gateway through its Go API: the carriers
// that move node sessions are the gateway's business, and the desktop's
// node reaches them only through node.Agent.
func TestNoCarrierImports(t *testing.T) {
	t.Parallel()
	imports := golist.Imports(t)
	if len(imports) == 0 {
		t.Fatal("go list found no imports")
	}
	for _, imp := range imports {
		if golist.IsCarrier(imp) {
			t.Errorf("app/localgw imports %s", imp)
		}
	}
}
