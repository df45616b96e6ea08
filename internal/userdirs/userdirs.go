// Package userdirs is where Palyra keeps its files for the user running
// it, per OS: the gateway's data directory, the desktop app's local
// gateway's, the node's config directory, and the sockets of the admin API
// and the node's local API. The command line, the desktop app and its
// local gateway all ask here, so they agree on one machine.
package userdirs

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Env is what the directories depend on. Tests fill it in to see another
// OS's answers.
type Env struct {
	// GOOS is the operating system, as runtime.GOOS names it.
	GOOS string
	// Getenv looks up an environment variable ("" when unset).
	Getenv func(string) string
	// HomeDir and ConfigDir are os.UserHomeDir and os.UserConfigDir.
	HomeDir   func() (string, error)
	ConfigDir func() (string, error)
}

// OS is this machine's Env, with getenv for the environment.
func OS(getenv func(string) string) Env {
	return Env{GOOS: runtime.GOOS, Getenv: getenv, HomeDir: os.UserHomeDir, ConfigDir: os.UserConfigDir}
}

// GatewayDataDir is where `palyra gateway run` keeps its state by default:
// the per-user data directory of the OS. Without a home directory it is
// relative to the working directory.
func GatewayDataDir(e Env) string {
	home, _ := e.HomeDir()
	switch e.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "Palyra", "gateway")
	case "windows":
		if d := e.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "Palyra", "gateway")
		}
	}
	if d := e.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "palyra", "gateway")
	}
	return filepath.Join(home, ".local", "share", "palyra", "gateway")
}

// LocalGatewayDataDir is the desktop app's local gateway's state, beside
// GatewayDataDir.
func LocalGatewayDataDir(e Env) (string, error) {
	home, err := e.HomeDir()
	switch e.GOOS {
	case "darwin":
		if err != nil {
			return "", fmt.Errorf("finding the home directory: %w", err)
		}
		return filepath.Join(home, "Library", "Application Support", "Palyra", "local-gateway"), nil
	case "windows":
		if d := e.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "Palyra", "local-gateway"), nil
		}
		d, cerr := e.ConfigDir()
		if cerr != nil {
			return "", fmt.Errorf("finding the data directory: %w", cerr)
		}
		return filepath.Join(d, "Palyra", "local-gateway"), nil
	}
	if d := e.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "palyra", "local-gateway"), nil
	}
	if err != nil {
		return "", fmt.Errorf("finding the home directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "palyra", "local-gateway"), nil
}

// RuntimeDir holds sockets: XDG_RUNTIME_DIR where there is one (it is
// private to the user and cleared at logout), else fallback, beside the
// state. Windows has no such directory (a variable of that name there is
// some Unix tool's, and nothing makes it private), so it is the fallback.
func RuntimeDir(e Env, fallback string) string {
	if d := e.Getenv("XDG_RUNTIME_DIR"); d != "" && e.GOOS != "windows" {
		return filepath.Join(d, "palyra")
	}
	return fallback
}

// AdminSocket is the gateway's admin socket: flagValue, then
// PALYRA_ADMIN_SOCKET, then the runtime directory (beside the gateway's
// state without one).
func AdminSocket(e Env, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := e.Getenv("PALYRA_ADMIN_SOCKET"); v != "" {
		return v
	}
	return filepath.Join(RuntimeDir(e, GatewayDataDir(e)), endpointName(e, "admin"))
}

// endpointName is the file name of a local API's endpoint: a socket, or
// on Windows the endpoint file.
func endpointName(e Env, api string) string {
	if e.GOOS == "windows" {
		return api + ".endpoint"
	}
	return api + ".sock"
}

// NodeConfigDir is where a node keeps its configuration: flagValue, then
// PALYRA_CONFIG_DIR, then on Windows %LOCALAPPDATA%\Palyra\node, else the
// OS's per-user config directory (XDG's where it applies), or the working
// directory without one. `palyra node` and the
// desktop app use the same one, so both see one device.
func NodeConfigDir(e Env, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := e.Getenv("PALYRA_CONFIG_DIR"); v != "" {
		return v
	}
	if d := e.Getenv("XDG_CONFIG_HOME"); d != "" && e.GOOS != "darwin" && e.GOOS != "windows" {
		return filepath.Join(d, "palyra", "node")
	}
	if d := e.Getenv("LOCALAPPDATA"); d != "" && e.GOOS == "windows" {
		return filepath.Join(d, "Palyra", "node")
	}
	d, err := e.ConfigDir()
	if err != nil {
		d = "."
	}
	return filepath.Join(d, "palyra", "node")
}

// NodeConfigDirGiven reports whether the node's config directory was
// named (flagValue or PALYRA_CONFIG_DIR) rather than the default.
func NodeConfigDirGiven(e Env, flagValue string) bool {
	return flagValue != "" || e.Getenv("PALYRA_CONFIG_DIR") != ""
}

// NodeSocket is the node agent's local API endpoint for the config dir dir.
// With a config dir that was named (given) it lives inside it, so two
// nodes on one machine (as in tests) never share a socket.
func NodeSocket(e Env, dir string, given bool) string {
	if given {
		return filepath.Join(dir, endpointName(e, "node"))
	}
	return filepath.Join(RuntimeDir(e, dir), endpointName(e, "node"))
}
