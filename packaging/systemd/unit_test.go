package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unit = "palyra-gateway.service"

// TestUnitVerifies runs `systemd-analyze verify` on the unit, with its
// ExecStart pointed at a palyra built from this checkout (verify checks the
// program exists): no error and no warning, such as a misspelt key, is
// accepted. It also keeps the unit a sandboxed notify service.
func TestUnitVerifies(t *testing.T) {
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"Type=notify", "DynamicUser=yes", "StateDirectory=palyra", "RuntimeDirectory=palyra",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "--data-dir /var/lib/palyra", "--admin-socket /run/palyra/admin.sock"} {
		if !strings.Contains(text, "\n"+want) && !strings.Contains(text, " "+want) {
			t.Errorf("%s lacks %q", unit, want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is missing (Debian package systemd; make test installs it)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "palyra")
	build := exec.Command("go", "build", "-o", bin, "github.com/palyra/palyra-go/cmd/palyra")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building palyra: %v\n%s", err, out)
	}
	const installed = "ExecStart=/usr/local/bin/palyra "
	if !strings.Contains(text, installed) {
		t.Fatalf("%s has no %q line", unit, installed)
	}
	path := filepath.Join(dir, unit)
	if err := os.WriteFile(path, []byte(strings.Replace(text, installed, "ExecStart="+bin+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}
