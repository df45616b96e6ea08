package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "api.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", di.Mode().Perm())
	}
	// A live socket is not taken over.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second Listen: %v", err)
	}
	// A stale one (its listener gone, the file left behind) is replaced.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	ln2.Close()
}

// A socket directory others can write, or a link, is refused with a
// sentence that says what to do.
func TestListenRefusesSharedDirectory(t *testing.T) {
	t.Parallel()
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o775); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(filepath.Join(shared, "api.sock"))
	if err == nil || !strings.Contains(err.Error(), "can be written by other users (mode 0775)") || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("Listen in a 0775 directory: %v", err)
	}
	private := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(link, "api.sock")); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("Listen in a linked directory: %v", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "api.sock")
	if err := Check(path); !errors.Is(err, ErrNoSocket) {
		t.Errorf("Check with no socket = %v, want ErrNoSocket", err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Errorf("Check on a served socket = %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := Check(path); !errors.Is(err, ErrNotServed) || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Check on a stale socket = %v, want ErrNotServed", err)
	}
	// Tests run as root, whom no mode stops; the mapping of the error a
	// user sees is checked on its own.
	denied := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	if err := explain(path, denied); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "belongs to another user") {
		t.Errorf("explain(EACCES) = %v, want ErrPermission", err)
	}
}
