package secretstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// allBytes is a value with every byte value, to show values are stored as
// opaque bytes.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func newTestFile(t *testing.T) *File {
	t.Helper()
	f, err := NewFile(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	return f
}

// dirNames lists dir, so tests can show that no temporary file is left.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFileRoundTrip(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	if f.Kind() != KindFile {
		t.Errorf("Kind() = %q, want %q", f.Kind(), KindFile)
	}

	if _, err := f.Get("device-key"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Set: %v, want ErrNotFound", err)
	}
	for _, value := range [][]byte{allBytes(), {}, []byte("-----BEGIN PRIVATE KEY-----\n")} {
		if err := f.Set("device-key", value); err != nil {
			t.Fatalf("Set: %v", err)
		}
		got, err := f.Get("device-key")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("Get = %x, want %x", got, value)
		}
	}
	if err := f.Delete("device-key"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := f.Get("device-key"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := f.Delete("device-key"); err != nil {
		t.Fatalf("Delete of a missing item: %v, want nil", err)
	}
	if names := dirNames(t, f.Dir()); len(names) != 0 {
		t.Errorf("directory holds %q after Delete, want nothing", names)
	}
}

func TestFileItemsAreSeparate(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	if err := f.Set("device-key", []byte("key")); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("device-cert", []byte("cert")); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("device-key", []byte("key2")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"device-key": "key2", "device-cert": "cert"} {
		got, err := f.Get(name)
		if err != nil || string(got) != want {
			t.Errorf("Get(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if got, want := dirNames(t, f.Dir()), []string{"device-cert", "device-key"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q and no temporary files", got, want)
	}
}

func TestFileSizeLimit(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	if err := f.Set("big", bytes.Repeat([]byte{0xff}, MaxValueSize)); err != nil {
		t.Fatalf("Set of exactly MaxValueSize bytes: %v", err)
	}
	err := f.Set("big", bytes.Repeat([]byte{0x01}, MaxValueSize+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Set of MaxValueSize+1 bytes: %v, want ErrTooLarge", err)
	}
	got, err := f.Get("big")
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xff}, MaxValueSize)) {
		t.Errorf("after a refused Set, Get = %d bytes, %v; want the earlier value", len(got), err)
	}
	if got, want := dirNames(t, f.Dir()), []string{"big"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}

	// A file grown by hand beyond the limit is refused, not read whole.
	if err := os.WriteFile(filepath.Join(f.Dir(), "grown"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get("grown"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Get of a 1 MiB file: %v, want ErrTooLarge", err)
	}
}

// TestFileFailedSetLeavesOldState makes the final rename fail and checks that
// the temporary file is cleaned up.
func TestFileFailedSetLeavesOldState(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	// A non-empty directory where the item should be: rename cannot
	// replace it.
	if err := os.MkdirAll(filepath.Join(f.Dir(), "device-key", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("device-key", []byte("new")); err == nil {
		t.Fatal("Set over a directory succeeded, want an error")
	}
	if got, want := dirNames(t, f.Dir()), []string{"device-key"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q after a failed Set, want %q (no temporary file)", got, want)
	}
	if _, err := f.Get("device-key"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a directory: %v, want an error other than ErrNotFound", err)
	}
}

// TestFileConcurrentSetNeverTorn has writers replace one item while readers
// read it: every read must return one whole value, never a mix or a prefix.
func TestFileConcurrentSetNeverTorn(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	values := make([][]byte, 4)
	for i := range values {
		values[i] = bytes.Repeat([]byte{byte('a' + i)}, MaxValueSize-i)
	}
	if err := f.Set("item", values[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, v := range values {
		wg.Go(func() {
			for range 20 {
				if err := f.Set("item", v); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 50 {
				got, err := f.Get("item")
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.ContainsFunc(values, func(v []byte) bool { return bytes.Equal(v, got) }) {
					t.Errorf("Get returned a torn value of %d bytes", len(got))
					return
				}
			}
		})
	}
	wg.Wait()
	if got, want := dirNames(t, f.Dir()), []string{"item"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q (no temporary files)", got, want)
	}
}

func TestFileRejectsBadNames(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	f, err := NewFile(filepath.Join(base, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../escape", "a/b", ".hidden", "..", "Key"} {
		if _, err := f.Get(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Get(%q): %v, want ErrInvalidName", name, err)
		}
		if err := f.Set(name, []byte("x")); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Set(%q): %v, want ErrInvalidName", name, err)
		}
		if err := f.Delete(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Delete(%q): %v, want ErrInvalidName", name, err)
		}
	}
	if got := dirNames(t, base); !slices.Equal(got, []string{"secrets"}) {
		t.Errorf("%s holds %q, want only the store's directory", base, got)
	}
	if got := dirNames(t, f.Dir()); len(got) != 0 {
		t.Errorf("store directory holds %q, want nothing", got)
	}
}

func TestNewFileErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewFile(""); err == nil || !strings.Contains(err.Error(), "no directory") {
		t.Errorf("NewFile(\"\") = %v, want a no directory error", err)
	}
	notDir := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFile(notDir); err == nil {
		t.Errorf("NewFile on a regular file succeeded, want an error")
	}
}

func TestFileValuesDoNotAppearInErrors(t *testing.T) {
	t.Parallel()
	f := newTestFile(t)
	secret := bytes.Repeat([]byte("s3cr3t"), MaxValueSize/6+1)
	err := f.Set("device-key", secret)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Set: %v, want ErrTooLarge", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q contains the value", err)
	}
}
