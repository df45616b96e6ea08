// Package unixsock opens the local Unix sockets of the gateway's admin API
// and the node's local API, so that only the owning user can use them, and
// explains why a client cannot reach one.
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Listen creates the socket inside a directory of this user's that no one
// else can write (created 0700; an existing one is checked) and makes it 0600,
// creating it with no access for others from the start. A stale socket left
// by a crash is replaced; a live one is not, so two processes never fight
// over it.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if err := checkPrivate(dir); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another process is already serving %s", path)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	ln, err := listenPrivate(path)
	if err != nil && noUnixSockets(err) {
		return nil, fmt.Errorf("listening on %s: %w: %w", path, ErrUnsupported, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting %s to its owner: %w", path, err)
	}
	return ln, nil
}

// Errors Check returns, to be tested with errors.Is.
var (
	// ErrNoSocket: there is no socket at the path.
	ErrNoSocket = errors.New("no socket")
	// ErrNotServed: the socket exists but nothing answers on it (its
	// process ended and left it behind).
	ErrNotServed = errors.New("nothing serves the socket")
	// ErrPermission: the socket, or its directory, belongs to another user.
	ErrPermission = errors.New("permission denied")
	// ErrUnsupported: the system has no Unix sockets (Windows before 10
	// version 1803, Wine), which Listen's error wraps.
	ErrUnsupported = errors.New("this system has no Unix sockets")
)

// Check connects to the socket at path once and says why it cannot be
// used, if it cannot: ErrNoSocket, ErrNotServed or ErrPermission (wrapping
// the system's error), each in words a person can act on.
func Check(path string) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return nil
	}
	return explain(path, err)
}

// explain turns an error connecting to the socket at path into Check's.
func explain(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w at %s: %w", ErrNoSocket, path, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: %s belongs to another user (run this as the user whose process serves it): %w", ErrPermission, path, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w at %s: its process is not running (it may have stopped and left the socket behind): %w", ErrNotServed, path, err)
	}
	return fmt.Errorf("connecting to %s: %w", path, err)
}
