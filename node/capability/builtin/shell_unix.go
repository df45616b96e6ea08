//go:build unix

package builtin

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// startTree starts the command as the leader of a process group of its
// own, and makes stopping it kill that whole group. Children it leaves
// running after it exits by itself are left alone. release has nothing to
// do here.
func startTree(cmd *exec.Cmd) (release func(), err error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			// The group is gone: the command had already exited.
			return os.ErrProcessDone
		}
		return err
	}
	return func() {}, cmd.Start()
}

// shellEnvNames name the little of the node's environment a command gets.
var shellEnvNames = []string{"PATH", "HOME", "LANG"}
