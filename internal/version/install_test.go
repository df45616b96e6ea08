package version

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// TestGoModHasNoReplace keeps `go install github.com/palyra/palyra-go/cmd/palyra@VERSION`
// working: the go command refuses to install from a module whose go.mod has
// a replace (or exclude) directive. What needs one lives in a module of its
// own (identity/zlinttest).
func TestGoModHasNoReplace(t *testing.T) {
	out, err := exec.Command("go", "mod", "edit", "-json", "../../go.mod").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var mod struct {
		Replace []struct {
			Old, New struct{ Path, Version string }
		}
		Exclude []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatalf("reading go mod edit -json: %v", err)
	}
	for _, r := range mod.Replace {
		t.Errorf("go.mod replaces %s with %s %s: go install …/cmd/palyra@VERSION refuses such a module; move what needs it into a module of its own", r.Old.Path, r.New.Path, r.New.Version)
	}
	for _, e := range mod.Exclude {
		t.Errorf("go.mod excludes %s %s: go install …/cmd/palyra@VERSION refuses such a module", e.Path, e.Version)
	}
	// And the module as the go command resolves it: no module is replaced.
	if got := golist.Run(t, "-m", "-f", "{{if .Replace}}{{.Path}} => {{.Replace.Path}}{{end}}", "all"); got != "" {
		t.Errorf("go list -m all shows replaced modules:\n%s", got)
	}
}
