package autostart

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// These run under Wine (autostart_wine_test.go), in a private prefix; on
// a real Windows they use a value of their own under the user's Run key.

// TestRunKey: off at first; on writes the quoted command line under the
// Run key, which reads back as the program and its arguments; off deletes
// it, and off again is no error.
func TestRunKey(t *testing.T) {
	r := RunKey{Name: "Palyra test " + t.Name(), Exec: `C:\Program Files\Palyra\palyra-desktop.exe`,
		Args: []string{"--local-gateway", "--config-dir", `C:\Users\Ann Lee\AppData\Local\Palyra\node`, "--name", `Ann's "laptop"`, ""}}
	t.Cleanup(func() { _ = r.Set(false) })
	if r.Enabled() {
		t.Fatal("on before it was turned on")
	}
	if err := r.Set(true); err != nil {
		t.Fatal(err)
	}
	if !r.Enabled() {
		t.Fatal("off after Set(true)")
	}
	k, err := registry.OpenKey(registry.CURRENT_USER, RunKeyPath, registry.QUERY_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	v, typ, err := k.GetStringValue(r.Name)
	k.Close()
	if err != nil || typ != registry.SZ {
		t.Fatalf("the Run value: type %d, %v", typ, err)
	}
	if !strings.HasPrefix(v, `"C:\Program Files\Palyra\palyra-desktop.exe" `) {
		t.Errorf("the program's path is not quoted: %s", v)
	}
	argv, err := windows.DecomposeCommandLine(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]string{r.Exec}, r.Args...); !slices.Equal(argv, want) {
		t.Errorf("the Run value %s reads back as %q, want %q", v, argv, want)
	}

	if err := r.Set(false); err != nil {
		t.Fatal(err)
	}
	if r.Enabled() {
		t.Error("on after Set(false)")
	}
	k, err = registry.OpenKey(registry.CURRENT_USER, RunKeyPath, registry.QUERY_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = k.GetStringValue(r.Name)
	k.Close()
	if !errors.Is(err, registry.ErrNotExist) {
		t.Errorf("the Run value after Set(false): %v, want it gone", err)
	}
	if err := r.Set(false); err != nil {
		t.Errorf("turning off what is off: %v", err)
	}
}

func TestRunKeyRefusesRelativeExec(t *testing.T) {
	r := RunKey{Name: "Palyra test " + t.Name(), Exec: "palyra-desktop.exe"}
	t.Cleanup(func() { _ = r.Set(false) })
	if err := r.Set(true); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("Set with a relative program: %v", err)
	}
	if r.Enabled() {
		t.Error("a value was written anyway")
	}
}

func TestForAppIsRunKey(t *testing.T) {
	s, err := ForApp(`C:\Palyra\palyra-desktop.exe`, []string{"--local-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := s.(RunKey); !ok || r.Name != RunValueName || r.CommandLine() != `"C:\Palyra\palyra-desktop.exe" --local-gateway` {
		t.Errorf("ForApp = %#v", s)
	}
}
