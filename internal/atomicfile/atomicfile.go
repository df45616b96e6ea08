// Package atomicfile replaces files so that a crash leaves either the old
// content or all of the new, never a torn file.
//
// It is kept instead of a library such as github.com/google/renameio
// because the node writes its config and sharing files on Windows too, and
// renameio does not support Windows. Here the same code serves every OS:
// os.Rename is MoveFileEx with MOVEFILE_REPLACE_EXISTING on Windows, which
// replaces the file in one step, and only the directory sync, which Windows
// cannot do, is skipped there.
package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
)

// Write writes data to a temporary file in path's directory with
// mode perm, syncs it and renames it over path, so that path holds either
// the old content or all of the new.
func Write(path string, data []byte, perm os.FileMode) error {
	return WritePrepared(path, data, perm, nil)
}

// WritePrepared is Write, with prepare (if not nil) called on the
// temporary file's path once it exists, empty, before data is written: to
// set what its mode cannot say, such as a Windows ACL, before the file
// holds anything.
func WritePrepared(path string, data []byte, perm os.FileMode, prepare func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if prepare != nil {
		if err = prepare(tmp); err != nil {
			return err
		}
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable where the platform allows it.
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
