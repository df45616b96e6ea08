package main

import (
	"os"
	"path/filepath"
	"runtime"
)

// version is the CLI's version, set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// dataDir is where a gateway keeps its state by default: the per-user data
// directory of the OS.
func dataDir(env *environment) string {
	home, _ := os.UserHomeDir()
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "Palyra", "gateway")
	case "windows":
		if d := env.getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "Palyra", "gateway")
		}
	}
	if d := env.getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "palyra", "gateway")
	}
	return filepath.Join(home, ".local", "share", "palyra", "gateway")
}

// runtimeDir holds sockets: XDG_RUNTIME_DIR where there is one (it is
// private to the user and cleared at logout), else beside the state.
func runtimeDir(env *environment, fallback string) string {
	if d := env.getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "palyra")
	}
	return fallback
}

// adminSocket is the gateway's admin socket: the flag, then
// PALYRA_ADMIN_SOCKET, then the default.
func adminSocket(env *environment, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := env.getenv("PALYRA_ADMIN_SOCKET"); v != "" {
		return v
	}
	return filepath.Join(runtimeDir(env, dataDir(env)), "admin.sock")
}

// configDir is where a node keeps its configuration: the flag, then
// PALYRA_CONFIG_DIR, then the OS's per-user config directory.
func configDir(env *environment, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := env.getenv("PALYRA_CONFIG_DIR"); v != "" {
		return v
	}
	if d := env.getenv("XDG_CONFIG_HOME"); d != "" && runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		return filepath.Join(d, "palyra", "node")
	}
	d, err := os.UserConfigDir()
	if err != nil {
		d = "."
	}
	return filepath.Join(d, "palyra", "node")
}

// nodeSocket is the node agent's local API socket for a config dir. With
// an explicit config dir it lives inside it, so two nodes on one machine
// (as in tests) never share a socket.
func nodeSocket(env *environment, dir string, explicit bool) string {
	if explicit {
		return filepath.Join(dir, "node.sock")
	}
	return filepath.Join(runtimeDir(env, dir), "node.sock")
}
