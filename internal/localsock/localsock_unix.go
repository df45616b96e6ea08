//go:build !windows

package localsock

import (
	"context"
	"net"

	"github.com/palyra/palyra-go/internal/unixsock"
)

// Listen serves the Unix socket at path (see unixsock.Listen).
func Listen(path string) (net.Listener, error) { return unixsock.Listen(path) }

// Dial connects to the Unix socket at path.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// Check says why the socket at path cannot be used, if it cannot (see
// unixsock.Check).
func Check(path string) error { return unixsock.Check(path) }
