//go:build !unix

package builtin

import (
	"os/exec"
)

// killTree leaves stopping to exec's default, which kills the process
// only: there are no process groups to kill here.
func killTree(*exec.Cmd) {}

// shellEnvNames name the little of the node's environment a command
// gets; on Windows many programs fail to start without SystemRoot.
var shellEnvNames = []string{"PATH", "HOME", "LANG", "USERPROFILE", "SystemRoot"}
