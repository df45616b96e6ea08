//go:build !unix && !windows

package builtin

import (
	"os/exec"
)

// startTree leaves stopping to exec's default, which kills the process
// only: there are no process groups to kill here.
func startTree(cmd *exec.Cmd) (release func(), err error) { return func() {}, cmd.Start() }

// shellEnvNames name the little of the node's environment a command gets.
var shellEnvNames = []string{"PATH", "HOME", "LANG"}
