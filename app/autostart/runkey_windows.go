package autostart

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// RunKeyPath is the key, under HKEY_CURRENT_USER, whose values Windows
// runs when the user logs in.
const RunKeyPath = `Software\Microsoft\Windows\CurrentVersion\Run`

// RunValueName is the app's value under RunKeyPath.
const RunValueName = "Palyra"

// ForApp is the login entry that starts the program exe with args: the
// app's value under the user's Run key.
func ForApp(exe string, args []string) (Switch, error) {
	return RunKey{Name: RunValueName, Exec: exe, Args: args}, nil
}

// RunKey is the app's login entry on Windows: a value under RunKeyPath
// holding its command line.
type RunKey struct {
	// Name is the value's name (RunValueName).
	Name string
	// Exec is the absolute path of the program to start.
	Exec string
	// Args are the arguments it starts with.
	Args []string
}

// Enabled reports whether the value is there.
func (r RunKey) Enabled() bool {
	k, err := registry.OpenKey(registry.CURRENT_USER, RunKeyPath, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	defer k.Close()
	v, _, err := k.GetStringValue(r.Name)
	return err == nil && v != ""
}

// Set writes the value (on) or deletes it (off).
func (r RunKey) Set(on bool) error {
	if !on {
		k, err := registry.OpenKey(registry.CURRENT_USER, RunKeyPath, registry.SET_VALUE)
		if errors.Is(err, registry.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("opening the Run key to remove the login entry: %w", err)
		}
		defer k.Close()
		if err := k.DeleteValue(r.Name); err != nil && !errors.Is(err, registry.ErrNotExist) {
			return fmt.Errorf("removing the login entry from the Run key: %w", err)
		}
		return nil
	}
	if !filepath.IsAbs(r.Exec) {
		return errRelative(r.Exec)
	}
	k, _, err := registry.CreateKey(registry.CURRENT_USER, RunKeyPath, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("opening the Run key: %w", err)
	}
	defer k.Close()
	if err := k.SetStringValue(r.Name, r.CommandLine()); err != nil {
		return fmt.Errorf("writing the login entry to the Run key: %w", err)
	}
	return nil
}

// CommandLine is the value as written: the program's path in quotes
// always (unquoted, a path with a space such as C:\Program Files\… would
// have Windows try C:\Program.exe first), then each argument quoted as
// CommandLineToArgvW and Go's os.Args read it.
func (r RunKey) CommandLine() string {
	var b strings.Builder
	b.WriteString(`"` + r.Exec + `"`)
	for _, a := range r.Args {
		b.WriteString(" ")
		b.WriteString(windows.EscapeArg(a))
	}
	return b.String()
}
