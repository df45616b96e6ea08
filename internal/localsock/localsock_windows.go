package localsock

import (
	"context"
	"net"
)

// Listen serves a loopback TCP port and writes its endpoint file at path
// (see listenToken).
func Listen(path string) (net.Listener, error) { return listenToken(path) }

// Dial connects to the endpoint path names and passes its token.
func Dial(ctx context.Context, path string) (net.Conn, error) { return dialToken(ctx, path) }

// Check connects to the endpoint once and says why it cannot be used, if
// it cannot.
func Check(path string) error { return checkToken(path) }
