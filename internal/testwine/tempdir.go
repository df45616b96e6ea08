package testwine

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TempDir is tb.TempDir for tests that also run, built for Windows, under
// Wine. Wine 8 does not implement the call with which Go's os.RemoveAll
// deletes a directory's entries on Windows (NtSetInformationFile with
// FileDispositionInformationEx; Wine answers STATUS_NOT_IMPLEMENTED, which
// Go reports as "Invalid function" and, unlike an older Windows's answer,
// does not fall back from), so the cleanup of any t.TempDir that holds
// anything, even an empty directory, fails its test: no file needs to be
// open. This one empties its directory first with os.Remove (DeleteFile and
// RemoveDirectory, which Wine has), so the testing package finds nothing
// left to delete. Elsewhere it is tb.TempDir with a redundant cleanup.
func TempDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	// Registered after tb.TempDir's own cleanup, so it runs before it.
	tb.Cleanup(func() {
		if err := removeTree(dir); err != nil {
			tb.Errorf("removing the test's directory %s: %v", dir, err)
		}
	})
	return dir
}

// removeTree removes dir and everything in it, deepest first, one
// os.Remove at a time.
func removeTree(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, path)
		return nil
	})
	if err != nil {
		return err
	}
	// WalkDir lists a directory before its entries.
	for _, p := range slices.Backward(paths) {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}
