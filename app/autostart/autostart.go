// Package autostart starts the desktop app when its user logs in: where the
// desktop follows the XDG Autostart specification (Linux and the BSDs), a
// desktop entry in $XDG_CONFIG_HOME/autostart; on Windows, a value under
// HKCU\Software\Microsoft\Windows\CurrentVersion\Run (RunKey, written with
// golang.org/x/sys/windows/registry, no cgo). It is off until the user turns
// it on, and turning it off removes the entry.
//
// macOS (a LaunchAgent plist in ~/Library/LaunchAgents) has its own
// mechanism, not written here: Supported is false there and the app hides
// its "Start at login" item rather than pretend.
package autostart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/palyra/palyra-go/internal/atomicfile"
)

// FileName is the desktop entry's name, after the app's ID.
const FileName = "palyra-desktop.desktop"

// Supported reports whether goos has a login entry this package writes:
// XDG autostart, or Windows' Run key.
func Supported(goos string) bool {
	switch goos {
	case "darwin", "ios", "android", "plan9", "js", "wasip1":
		return false
	}
	return true
}

// Switch is a login entry, on or off: an Entry, or on Windows a RunKey.
type Switch interface {
	Enabled() bool
	Set(on bool) error
}

// errRelative refuses a login entry for a program named by a relative
// path, which the session would resolve against another directory.
func errRelative(exec string) error {
	return fmt.Errorf("starting at login needs the app's absolute path, not %q", exec)
}

// Entry is the app's autostart entry: where it lives and what it runs.
type Entry struct {
	// Path is the desktop entry file (see PathIn).
	Path string
	// Exec is the absolute path of the program to start.
	Exec string
	// Args are the arguments it starts with.
	Args []string
}

// PathIn is the entry's path for the XDG config directory configHome
// ($XDG_CONFIG_HOME, or ~/.config; os.UserConfigDir says which).
func PathIn(configHome string) string {
	return filepath.Join(configHome, "autostart", FileName)
}

// Enabled reports whether the entry exists. An entry the desktop was told to
// skip (Hidden=true, as some session settings write) counts as off.
func (e Entry) Enabled() bool {
	b, err := os.ReadFile(e.Path)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if strings.TrimSpace(line) == "Hidden=true" {
			return false
		}
	}
	return true
}

// Set writes the entry (on) or removes it (off).
func (e Entry) Set(on bool) error {
	if !on {
		if err := os.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the autostart entry: %w", err)
		}
		return nil
	}
	if !filepath.IsAbs(e.Exec) {
		return errRelative(e.Exec)
	}
	if err := os.MkdirAll(filepath.Dir(e.Path), 0o755); err != nil {
		return fmt.Errorf("creating the autostart folder: %w", err)
	}
	if err := atomicfile.Write(e.Path, e.Content(), 0o644); err != nil {
		return fmt.Errorf("writing the autostart entry: %w", err)
	}
	return nil
}

// Content is the desktop entry as written.
func (e Entry) Content() []byte {
	var b strings.Builder
	b.WriteString("[Desktop Entry]\n")
	b.WriteString("Type=Application\n")
	b.WriteString("Name=Palyra\n")
	b.WriteString("Comment=Share the capabilities you choose with your Palyra gateway\n")
	b.WriteString("Exec=" + execLine(e.Exec, e.Args) + "\n")
	b.WriteString("Terminal=false\n")
	b.WriteString("X-GNOME-Autostart-enabled=true\n")
	return []byte(b.String())
}

// execLine quotes a command line as the Desktop Entry Specification's Exec
// key wants it: an argument with a reserved character goes in double quotes
// with ", `, $ and \ escaped by a backslash; % is doubled (field codes); and
// the whole value is escaped once more as a string value (\ becomes \\).
func execLine(prog string, args []string) string {
	words := make([]string, 0, 1+len(args))
	for _, a := range append([]string{prog}, args...) {
		words = append(words, quoteArg(a))
	}
	line := strings.Join(words, " ")
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(line)
}

func quoteArg(a string) string {
	a = strings.ReplaceAll(a, "%", "%%")
	if a != "" && !strings.ContainsAny(a, " \t\n\"'\\><~|&;$*?#()`") {
		return a
	}
	return `"` + strings.NewReplacer(`"`, `\"`, "`", "\\`", `$`, `\$`, `\`, `\\`).Replace(a) + `"`
}
