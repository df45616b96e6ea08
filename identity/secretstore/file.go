package secretstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// File stores items as 0600 files in dir (created 0700), written atomically
// (temp file, fsync, rename) so a crash never leaves a torn item. It is the
// explicit choice for machines without a keychain: anyone who can read the
// files as this user, or as root, has the secrets.
//
// On Unix, Get refuses a file, and NewFile a directory, that other users may
// read or write (ErrInsecurePermissions) rather than use a secret that may
// have leaked or been replaced, and Get never follows a symlink or waits on a
// FIFO put in place of an item. Windows has no such mode bits; there the
// protection is the ACL of the directory the caller picks, normally inside the
// user's profile.
type File struct {
	dir string
}

// NewFile returns a File store in dir, creating dir with mode 0700 if needed.
func NewFile(dir string) (*File, error) {
	if dir == "" {
		return nil, errors.New("opening file secret store: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening file secret store: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("opening file secret store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening file secret store: %s is not a directory", dir)
	}
	if err := checkPrivate(dir, fi); err != nil {
		return nil, fmt.Errorf("opening file secret store: %w", err)
	}
	return &File{dir: dir}, nil
}

// Kind reports KindFile.
func (f *File) Kind() string { return KindFile }

// Dir reports the directory holding the items, for messages such as doctor's
// warning that secrets are kept in files.
func (f *File) Dir() string { return f.dir }

// Get returns the value stored under name.
func (f *File) Get(name string) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("reading secret file: %w", err)
	}
	path := filepath.Join(f.dir, name)
	what := fmt.Sprintf("reading secret %q from %s", name, path)

	// One open, then checks on the descriptor: checking the path first
	// and opening it second would race with a concurrent Set's rename.
	file, err := os.OpenFile(path, os.O_RDONLY|openItemFlags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err != nil {
		if lfi, lerr := os.Lstat(path); lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s: not a regular file but a symlink, which is not followed", what)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (mode %s)", what, fi.Mode())
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	value, err := io.ReadAll(io.LimitReader(file, MaxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(value) > MaxValueSize {
		return nil, fmt.Errorf("%s: %w: the file holds more than %d bytes, so it was not written by this program", what, ErrTooLarge, MaxValueSize)
	}
	return value, nil
}

// Set stores value under name, replacing any previous value atomically: the
// value goes to a temporary file in the same directory, which is synced and
// then renamed over the item, and the directory is synced so the rename
// survives a crash.
func (f *File) Set(name string, value []byte) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("storing secret file: %w", err)
	}
	path := filepath.Join(f.dir, name)
	what := fmt.Sprintf("storing secret %q in %s", name, path)
	if len(value) > MaxValueSize {
		return fmt.Errorf("%s: %w: %d bytes, over the limit of %d shared with the OS keychain", what, ErrTooLarge, len(value), MaxValueSize)
	}

	// The temporary name starts with a dot, which no valid item name does,
	// so it can never be mistaken for an item. os.CreateTemp makes it 0600.
	tmp, err := os.CreateTemp(f.dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	tmpPath := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpPath)
		}
	}()
	if _, err := tmp.Write(value); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	committed = true
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Delete removes the item stored under name; a missing item is not an error.
func (f *File) Delete(name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("deleting secret file: %w", err)
	}
	path := filepath.Join(f.dir, name)
	what := fmt.Sprintf("deleting secret %q from %s", name, path)
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// Sync the directory so a forgotten secret stays forgotten after a
	// crash.
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// checkPrivate refuses a file or directory whose mode lets group or others
// read, write or enter it.
func checkPrivate(path string, fi fs.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		want := fs.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		return fmt.Errorf("%w: %s has mode %#o, so the secrets may have leaked; check who could read them, then run: chmod %o %s",
			ErrInsecurePermissions, path, perm, want, path)
	}
	return nil
}

// syncDir makes a rename or removal in dir durable. Windows cannot sync a
// directory handle, and NTFS journals the rename itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("syncing directory: %w", err)
	}
	return d.Close()
}
