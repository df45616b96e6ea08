//go:build !unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// ownGroup does nothing where there are no process groups to signal: the
// desktop tests' helpers (Xvfb, D-Bus) exist only on Unix, and these are
// here so that the tests type-check on Windows too.
func ownGroup(*exec.Cmd) {}

// signalGroup kills p: Windows cannot send a process a signal.
func signalGroup(p *os.Process, _ syscall.Signal) {
	_ = p.Kill()
}
