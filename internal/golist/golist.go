// Package golist runs `go list` for tests that fence a package's imports
// (what it may depend on, and that it builds without cgo).
package golist

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Run runs `go list args...` with cgo off in the test's package directory
// and returns its output; it fails the test if go list fails.
func Run(t *testing.T, args ...string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, append([]string{"list"}, args...)...)
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// Deps is every package the test's package depends on (itself included),
// built without cgo.
func Deps(t *testing.T) []string {
	t.Helper()
	return strings.Fields(Run(t, "-deps", "-f", "{{.ImportPath}}", "."))
}

// DepsOf is every package pkg (an import path, or "." for the test's own)
// depends on, itself included, built without cgo.
func DepsOf(t *testing.T, pkg string) []string {
	t.Helper()
	return strings.Fields(Run(t, "-deps", "-f", "{{.ImportPath}}", pkg))
}

// Imports is what the test's package imports directly.
func Imports(t *testing.T) []string {
	t.Helper()
	return strings.Fields(Run(t, "-f", `{{join .Imports " "}}`, "."))
}

// Fence fails t for every package of pkgs (Deps or Imports) whose import
// path starts with one of forbidden.
func Fence(t *testing.T, pkgs []string, forbidden ...string) {
	t.Helper()
	for _, p := range pkgs {
		for _, f := range forbidden {
			if strings.HasPrefix(p, f) {
				t.Errorf("depends on %s", p)
			}
		}
	}
}

// Forbid fails t for each package the test's package depends on whose
// import path starts with one of prefixes.
func Forbid(t *testing.T, prefixes ...string) {
	t.Helper()
	Fence(t, Deps(t), prefixes...)
}

// module is this module's path.
const module = "github.com/palyra/palyra-go/"

// IsCarrier reports whether path is one of this module's carriers, the
// packages that move node sessions over a transport (gateway/quiccarrier,
// node/grpccarrier, the shared gateway/carrier and node/carrier, ...):
// a package of the module whose name ends in "carrier".
func IsCarrier(path string) bool {
	return strings.HasPrefix(path, module) && strings.HasSuffix(path[strings.LastIndex(path, "/")+1:], "carrier")
}
