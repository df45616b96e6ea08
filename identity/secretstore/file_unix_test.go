//go:build unix

package secretstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestFileModes(t *testing.T) {
	t.Parallel()
	// A nested directory, so MkdirAll creates more than one level.
	dir := filepath.Join(t.TempDir(), "config", "secrets")
	f, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("directory mode %#o, want 0700", got)
	}
	if err := f.Set("device-key", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, filepath.Join(dir, "device-key")); got != 0o600 {
		t.Errorf("item mode %#o, want 0600", got)
	}
	if err := f.Set("device-key", []byte("k2")); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, filepath.Join(dir, "device-key")); got != 0o600 {
		t.Errorf("item mode after overwrite %#o, want 0600", got)
	}
}

// TestFileRefusesExposedItem: a secret file others could read may have leaked,
// so reading it fails with a message that says how to fix the mode. Storing a
// new value replaces the file with a private one.
func TestFileRefusesExposedItem(t *testing.T) {
	t.Parallel()
	for _, perm := range []fs.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o660} {
		t.Run(perm.String(), func(t *testing.T) {
			t.Parallel()
			f := newTestFile(t)
			if err := f.Set("device-key", []byte("k")); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(f.Dir(), "device-key")
			if err := os.Chmod(path, perm); err != nil {
				t.Fatal(err)
			}
			_, err := f.Get("device-key")
			if !errors.Is(err, ErrInsecurePermissions) {
				t.Fatalf("Get of a %#o file: %v, want ErrInsecurePermissions", perm, err)
			}
			for _, want := range []string{"may have leaked", "chmod 600 " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if err := f.Set("device-key", []byte("k2")); err != nil {
				t.Fatal(err)
			}
			if got, err := f.Get("device-key"); err != nil || string(got) != "k2" {
				t.Errorf("Get after Set = %q, %v; want k2", got, err)
			}
		})
	}
}

func TestNewFileRefusesExposedDir(t *testing.T) {
	t.Parallel()
	for _, perm := range []fs.FileMode{0o755, 0o750, 0o701, 0o770} {
		t.Run(perm.String(), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "secrets")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			// Chmod, not Mkdir's mode, which the umask would trim.
			if err := os.Chmod(dir, perm); err != nil {
				t.Fatal(err)
			}
			_, err := NewFile(dir)
			if !errors.Is(err, ErrInsecurePermissions) {
				t.Fatalf("NewFile on a %#o directory: %v, want ErrInsecurePermissions", perm, err)
			}
			if want := "chmod 700 " + dir; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			if got := mode(t, dir); got != perm {
				t.Errorf("NewFile changed the directory's mode to %#o; it must leave it to the user", got)
			}
		})
	}
}

func TestFileRefusesSymlink(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("planted"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(f.Dir(), "device-key")); err != nil {
		t.Fatal(err)
	}
	got, err := f.Get("device-key")
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get through a symlink = %q, %v; want a refusal", got, err)
	}
	if !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("error %q does not say the item is not a regular file", err)
	}
}

// TestFileRefusesFIFO: a FIFO in place of an item must be refused at once;
// opening it for reading would otherwise wait for a writer for ever.
func TestFileRefusesFIFO(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	if err := syscall.Mkfifo(filepath.Join(f.Dir(), "device-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := f.Get("device-key")
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Get of a FIFO: %v, want a not a regular file error", err)
	}
}
