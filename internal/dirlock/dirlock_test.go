package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestSecondHolderRefused: a second Acquire of the same directory (another
// open file description, as in another process) is refused with the first
// holder's PID, and succeeds once the first releases it.
func TestSecondHolderRefused(t *testing.T) {
	dir := testwine.TempDir(t)
	first, err := Acquire(dir, "test.lock", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "test.lock", "gateway")
	want := fmt.Sprintf("another gateway (pid %d) is using %s", os.Getpid(), dir)
	if !errors.Is(err, ErrLocked) || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Acquire: %v, want an error saying %q", err, want)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	second, err := Acquire(dir, "test.lock", "gateway")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	second.Release()
}

// TestUnreadablePID: a lock file whose content is no PID still refuses,
// without a made-up PID.
func TestUnreadablePID(t *testing.T) {
	dir := testwine.TempDir(t)
	first, err := Acquire(dir, "test.lock", "node")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	if err := os.WriteFile(filepath.Join(dir, "test.lock"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "test.lock", "node")
	if want := "another node is using " + dir; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}
