package main

import "github.com/palyra/palyra-go/internal/userdirs"

// dirs is the per-user directories' view of env.
func dirs(env *environment) userdirs.Env { return userdirs.OS(env.getenv) }

// dataDir is where a gateway keeps its state by default.
func dataDir(env *environment) string { return userdirs.GatewayDataDir(dirs(env)) }

// adminSocket is the admin socket a command reaches the gateway on: the
// flag, then PALYRA_ADMIN_SOCKET, then the default, or the one the default
// gateway recorded in its data directory when it runs with another
// XDG_RUNTIME_DIR. (A gateway serves on userdirs.AdminSocket.)
func adminSocket(env *environment, flagValue string) string {
	socket := userdirs.AdminSocket(dirs(env), flagValue)
	if flagValue != "" || env.getenv("PALYRA_ADMIN_SOCKET") != "" {
		return socket
	}
	return userdirs.FindSocket(socket, dataDir(env), userdirs.GatewaySocketRecord)
}
