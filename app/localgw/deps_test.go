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
