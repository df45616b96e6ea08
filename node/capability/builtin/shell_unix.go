//go:build unix

package builtin

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killTree makes the command lead a process group of its own, and makes
// stopping it kill that whole group.
func killTree(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			// The group is gone: the command had already exited.
			return os.ErrProcessDone
		}
		return err
	}
}

// shellEnvNames name the little of the node's environment a command gets.
var shellEnvNames = []string{"PATH", "HOME", "LANG"}
