package autostart

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExecLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prog string
		args []string
		want string
	}{
		{"/usr/bin/palyra-desktop", nil, `/usr/bin/palyra-desktop`},
		{"/usr/bin/palyra-desktop", []string{"--local-gateway"}, `/usr/bin/palyra-desktop --local-gateway`},
		{"/home/a b/palyra-desktop", []string{"--config-dir", "/home/a b/.config/p"}, `"/home/a b/palyra-desktop" --config-dir "/home/a b/.config/p"`},
		// Field codes: a literal % is doubled.
		{"/opt/p", []string{"--name", "100%"}, `/opt/p --name 100%%`},
		// Inside quotes ", `, $ and \ are escaped, and the value's
		// backslashes are escaped again as a string value.
		{"/opt/p", []string{"--name", `a"b$c\d`}, `/opt/p --name "a\\"b\\$c\\\\d"`},
		{"/opt/p", []string{"--name", ""}, `/opt/p --name ""`},
	} {
		if got := execLine(tc.prog, tc.args); got != tc.want {
			t.Errorf("execLine(%q, %q) = %s, want %s", tc.prog, tc.args, got, tc.want)
		}
	}
}

// TestEntryIsValid checks the written file with desktop-file-validate, the
// reference checker of the Desktop Entry Specification.
func TestEntryIsValid(t *testing.T) {
	t.Parallel()
	validate, err := exec.LookPath("desktop-file-validate")
	if err != nil {
		t.Fatal("desktop-file-validate not found: install desktop-file-utils (make test installs it)")
	}
	dir := t.TempDir()
	e := Entry{Path: PathIn(filepath.Join(dir, "config")), Exec: filepath.Join(dir, "my apps", "palyra-desktop"),
		Args: []string{"--local-gateway", "--config-dir", filepath.Join(dir, "conf $HOME"), "--name", `Ann's "laptop" 100%`}}
	if e.Enabled() {
		t.Fatal("enabled before it was turned on")
	}
	if err := e.Set(true); err != nil {
		t.Fatal(err)
	}
	if !e.Enabled() {
		t.Fatal("not enabled after Set(true)")
	}
	out, err := exec.Command(validate, e.Path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		content, _ := os.ReadFile(e.Path)
		t.Fatalf("desktop-file-validate: %v\n%s\n%s", err, out, content)
	}
	if err := e.Set(false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.Path); !os.IsNotExist(err) {
		t.Fatalf("the entry is still there after Set(false): %v", err)
	}
	if err := e.Set(false); err != nil {
		t.Errorf("turning off what is off: %v", err)
	}
}

func TestEnabledHonoursHidden(t *testing.T) {
	t.Parallel()
	e := Entry{Path: PathIn(t.TempDir()), Exec: "/usr/bin/palyra-desktop"}
	if err := e.Set(true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.Path, append(e.Content(), "Hidden=true\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if e.Enabled() {
		t.Error("an entry marked Hidden=true counts as on; the session will not start it")
	}
}

func TestSetRefusesRelativeExec(t *testing.T) {
	t.Parallel()
	e := Entry{Path: PathIn(t.TempDir()), Exec: "palyra-desktop"}
	err := e.Set(true)
	if err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("Set with a relative program: %v", err)
	}
	if e.Enabled() {
		t.Error("an entry was written anyway")
	}
}
