//go:build !windows

package unixsock

import (
	"net"
	"os"
	"syscall"
	"testing"
)

func TestNoUnixSockets(t *testing.T) {
	t.Parallel()
	op := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "unix", Err: os.NewSyscallError("socket", errno)}
	}
	if !noUnixSockets(op(syscall.EAFNOSUPPORT)) {
		t.Error("EAFNOSUPPORT from socket() is not taken for a system without Unix sockets")
	}
	for _, errno := range []syscall.Errno{syscall.EACCES, syscall.EADDRINUSE, syscall.ENAMETOOLONG} {
		if noUnixSockets(op(errno)) {
			t.Errorf("%v is taken for a system without Unix sockets", errno)
		}
	}
}
