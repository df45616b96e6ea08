//go:build !windows

package unixsock

import (
	"errors"
	"syscall"
)

// noUnixSockets reports the error of a system without AF_UNIX.
func noUnixSockets(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT)
}
