package grpcsession

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The node's carrier must not import the gateway or the GUI, and must
// build without cgo.
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
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/palyra/palyra-go/gateway") ||
			strings.HasPrefix(dep, "github.com/palyra/palyra-go/app") ||
			strings.HasPrefix(dep, "fyne.io/") {
			t.Errorf("node/grpcsession depends on %s", dep)
		}
	}
}
