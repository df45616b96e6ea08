package localgw

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The local gateway is the desktop app's engine, not its UI: it must not
// import the GUI (fyne, the rest of app/) and must build without cgo, so
// `palyra-desktop --headless-gateway` and its tests run anywhere.
func TestImports(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const self = "github.com/palyra/palyra-go/app/localgw"
	for _, dep := range strings.Fields(string(out)) {
		if dep != self && strings.HasPrefix(dep, "github.com/palyra/palyra-go/app") ||
			strings.HasPrefix(dep, "fyne.io/") || strings.HasPrefix(dep, "github.com/go-gl/") {
			t.Errorf("app/localgw depends on %s", dep)
		}
	}
}
