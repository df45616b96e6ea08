// Package sdnotify tells systemd (or another service manager that speaks
// its notify protocol) how a service started with Type=notify is doing:
// one datagram of newline-separated VAR=VALUE lines to the Unix socket
// named by $NOTIFY_SOCKET. It is a few lines without cgo, in place of
// libsystemd.
package sdnotify

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
)

const (
	// Ready says the service is up: systemd starts what waits for it.
	Ready = "READY=1"
	// Stopping says the service is shutting down.
	Stopping = "STOPPING=1"
)

// Notify sends state to the service manager. Without $NOTIFY_SOCKET (not
// started by one) it does nothing and returns false; true means the
// message was sent.
func Notify(state string) (bool, error) {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return false, nil
	}
	// "@name" is Linux's abstract namespace; the net package maps a
	// leading @ to the NUL byte the kernel expects.
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return false, fmt.Errorf("notifying the service manager: NOTIFY_SOCKET %q is neither a path nor an abstract socket (@name)", socket)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notifying the service manager at %s: %w", socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("notifying the service manager at %s: %w", socket, err)
	}
	return true, nil
}

// Func is a callback that sends state, logging a failure to log: for
// gateway.Config's Serving and Stopping. A service manager that does not
// hear READY=1 stops the service after its start timeout, so the log line
// says why.
func Func(state string, log *slog.Logger) func() {
	return func() {
		if sent, err := Notify(state); err != nil {
			log.Error("telling the service manager", "state", state, "err", err)
		} else if sent {
			log.Debug("told the service manager", "state", state)
		}
	}
}
