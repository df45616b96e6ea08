package unixsock

import (
	"errors"

	"golang.org/x/sys/windows"
)

// noUnixSockets reports the error of a Windows without AF_UNIX.
func noUnixSockets(err error) bool {
	return errors.Is(err, windows.WSAEAFNOSUPPORT)
}
