//go:build !windows

package autostart

import (
	"fmt"
	"os"
)

// ForApp is the login entry that starts the program exe with args: the XDG
// autostart entry in the user's config directory.
func ForApp(exe string, args []string) (Switch, error) {
	configHome, err := os.UserConfigDir()
	if err != nil {
		return nil, fmt.Errorf("no config directory to put the autostart entry in: %w", err)
	}
	return Entry{Path: PathIn(configHome), Exec: exe, Args: args}, nil
}
