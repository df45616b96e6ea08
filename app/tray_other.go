//go:build !linux

package app

// TrayAvailable reports whether the desktop shows tray icons; macOS and
// Windows always do.
func TrayAvailable() (bool, error) { return true, nil }

// announceTrayMenu is needed only for the freedesktop tray (see the Linux
// version).
func announceTrayMenu() {}
