package version

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

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

// TestGoInstallAtCommit installs the CLI the way a user does, `go install
// github.com/palyra/palyra-go/cmd/palyra@VERSION` from outside any module,
// at the commit under test. The module comes from a proxy on disk holding a
// zip of the committed tree (what a module proxy would serve for that
// commit); its dependencies come the usual way. The binary must run and
// name the commit it was built from.
func TestGoInstallAtCommit(t *testing.T) {
	root := strings.TrimSpace(git(t, "rev-parse", "--show-toplevel"))
	rev := strings.TrimSpace(git(t, "rev-parse", "HEAD"))
	when := strings.TrimSpace(git(t, "show", "-s", "--format=%cd", "--date=format-local:%Y%m%d%H%M%S", "HEAD"))
	const mod = "github.com/palyra/palyra-go"
	ver := "v0.0.0-" + when + "-" + rev[:12]

	proxy := t.TempDir()
	dir := filepath.Join(proxy, mod, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, ver+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.CreateFromVCS(f, module.Version{Path: mod, Version: ver}, root, rev, ""); err != nil {
		t.Fatalf("zipping the module at %s: %v", rev, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	goMod := git(t, "show", rev+":go.mod")
	info := fmt.Sprintf(`{"Version":%q,"Time":"%s-%s-%sT%s:%s:%sZ"}`, ver, when[0:4], when[4:6], when[6:8], when[8:10], when[10:12], when[12:14])
	for name, content := range map[string]string{"list": ver + "\n", ver + ".mod": goMod, ver + ".info": info} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	upstream := strings.TrimSpace(goEnv(t, "GOPROXY"))
	bin := t.TempDir()
	cmd := exec.CommandContext(t.Context(), goTool(t), "install", mod+"/cmd/palyra@"+ver)
	cmd.Dir = t.TempDir() // outside any module, as a user is
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off",
		"GOPROXY=file://"+filepath.ToSlash(proxy)+","+upstream,
		// The zip is made here, so no checksum database knows it.
		"GONOSUMDB="+mod, "GONOSUMCHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s/cmd/palyra@%s: %v\n%s", mod, ver, err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "palyra"), "version", "--json").Output()
	if err != nil {
		t.Fatalf("the installed palyra version --json: %v", err)
	}
	var got Build
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("reading palyra version --json %q: %v", out, err)
	}
	if got.Version != Version || got.Revision != rev[:12] || got.Modified {
		t.Errorf("the installed palyra says %+v, want version %s at commit %s, unmodified", got, Version, rev[:12])
	}
}

func git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %s: %v (the test needs the repository's history)", strings.Join(args, " "), err)
	}
	return string(out)
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command(goTool(t), "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return string(out)
}

func goTool(t *testing.T) string {
	t.Helper()
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
