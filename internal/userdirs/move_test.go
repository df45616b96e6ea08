package userdirs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/testwine"
)

// oldLayout makes a Windows user's profile, under root, with a node paired
// by a release that kept it in %APPDATA%, and answers its Env.
func oldLayout(t *testing.T, root string, vars map[string]string) (Env, string) {
	t.Helper()
	roaming := filepath.Join(root, "Roaming")
	old := filepath.Join(roaming, "palyra", "node")
	if err := os.MkdirAll(filepath.Join(old, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"node.json": `{"device_id":"d1"}`, filepath.Join("secrets", "k"): "key"} {
		if err := os.WriteFile(filepath.Join(old, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v := map[string]string{"LOCALAPPDATA": filepath.Join(root, "Local")}
	for k, val := range vars {
		v[k] = val
	}
	return fakeEnv("windows", v, root, roaming), old
}

func TestMoveOldNodeConfig(t *testing.T) {
	e, old := oldLayout(t, testwine.TempDir(t), nil)
	from, err := MoveOldNodeConfig(e)
	if err != nil || from != old {
		t.Fatalf("MoveOldNodeConfig = %q, %v; want %q", from, err, old)
	}
	dir := NodeConfigDir(e, "")
	for name, want := range map[string]string{"node.json": `{"device_id":"d1"}`, filepath.Join("secrets", "k"): "key"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s after the move: %q, %v", name, b, err)
		}
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old directory is still there: %v", err)
	}
	if from, err := MoveOldNodeConfig(e); from != "" || err != nil {
		t.Errorf("a second MoveOldNodeConfig = %q, %v; want nothing to do", from, err)
	}
}

// A node already in the new place is the one in use: the old one is left.
func TestMoveOldNodeConfigLeavesBoth(t *testing.T) {
	e, old := oldLayout(t, testwine.TempDir(t), nil)
	dir := NodeConfigDir(e, "")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if from, err := MoveOldNodeConfig(e); from != "" || err != nil {
		t.Errorf("MoveOldNodeConfig = %q, %v; want nothing to do", from, err)
	}
	if _, err := os.Stat(filepath.Join(old, "node.json")); err != nil {
		t.Errorf("the old node.json: %v", err)
	}

	named, old := oldLayout(t, testwine.TempDir(t), map[string]string{"PALYRA_CONFIG_DIR": filepath.Join(testwine.TempDir(t), "mine")})
	if from, err := MoveOldNodeConfig(named); from != "" || err != nil {
		t.Errorf("with PALYRA_CONFIG_DIR: MoveOldNodeConfig = %q, %v; want nothing to do", from, err)
	}
	if _, err := os.Stat(filepath.Join(old, "node.json")); err != nil {
		t.Errorf("with PALYRA_CONFIG_DIR, the old node.json: %v", err)
	}
	for _, goos := range []string{"linux", "darwin"} {
		if d := OldNodeConfigDir(fakeEnv(goos, nil, "/h", "/c")); d != "" {
			t.Errorf("%s: OldNodeConfigDir = %q, want none", goos, d)
		}
	}
}

// A move that fails says where the configuration is and leaves it there.
func TestMoveOldNodeConfigFails(t *testing.T) {
	root := testwine.TempDir(t)
	e, old := oldLayout(t, root, nil)
	// %LOCALAPPDATA%\Palyra is a file, so nothing can be made under it.
	if err := os.MkdirAll(filepath.Join(root, "Local"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "Local", "Palyra"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	from, err := MoveOldNodeConfig(e)
	if err == nil || from != "" || !strings.Contains(err.Error(), old) {
		t.Fatalf("MoveOldNodeConfig = %q, %v; want an error naming %s", from, err, old)
	}
	if _, err := os.Stat(filepath.Join(old, "node.json")); err != nil {
		t.Errorf("the old node.json after a failed move: %v", err)
	}
}
