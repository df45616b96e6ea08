//go:build unix

package localsock

import (
	"os"
	"path/filepath"
	"testing"
)

// The endpoint file, which holds the token, is the user's alone.
func TestEndpointFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.endpoint")
	ln, err := listenToken(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("endpoint file mode %v, want 0600", fi.Mode().Perm())
	}
}
