package userdirs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// OldNodeConfigDir is where releases before %LOCALAPPDATA% kept a node's
// configuration on Windows: os.UserConfigDir's %APPDATA%, the roaming
// profile, which could carry node.json to another machine without the
// key it names in that machine's Credential Manager. "" elsewhere (no
// other OS's default ever moved), and where PALYRA_CONFIG_DIR names the
// node's directory.
func OldNodeConfigDir(e Env) string {
	if e.GOOS != "windows" || e.Getenv("LOCALAPPDATA") == "" || e.Getenv("PALYRA_CONFIG_DIR") != "" {
		return ""
	}
	d, err := e.ConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "palyra", "node")
}

// MoveOldNodeConfig moves a node's configuration from OldNodeConfigDir to
// NodeConfigDir's default when only the old one exists, so that a device
// paired by an older release stays paired. It answers the directory it
// moved from, or "" when there was nothing to move. A failure (a program
// of the older release still running in it holds its files open) leaves
// both as they were: the caller must not go on to use the new, empty
// place, or the user would pair the same laptop again as a second device.
func MoveOldNodeConfig(e Env) (from string, err error) {
	old := OldNodeConfigDir(e)
	if old == "" {
		return "", nil
	}
	dir := NodeConfigDir(e, "")
	if fi, err := os.Stat(old); err != nil || !fi.IsDir() {
		return "", nil
	}
	_, err = os.Lstat(dir)
	if err == nil {
		return "", nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(dir), 0o700); err == nil {
			err = os.Rename(old, dir)
		}
	}
	if err != nil {
		return "", fmt.Errorf("moving the node's configuration from %s to %s (quit any Palyra still running, or give --config-dir %s): %w", old, dir, old, err)
	}
	return old, nil
}
