//go:build !unix

package testpg

import "os/exec"

// The server runs where PostgreSQL's Unix packages do (binaries finds
// none elsewhere); these only keep the package building.

func ownProcessGroup(*exec.Cmd) {}

func killProcessGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
