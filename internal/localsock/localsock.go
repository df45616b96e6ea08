// Package localsock is the endpoint of the local APIs — the gateway's admin
// API and the node's local API — that only the user running them may use,
// on every OS: a Unix socket of mode 0600 (internal/unixsock) where the
// system has them, and on Windows a loopback TCP port whose token is in a
// file only the user can read. Listen, Dial and Check take the same path on
// both: the socket, or on Windows that file.
//
// Why not a named pipe on Windows, whose ACL the system checks itself: a
// pipe needs overlapped I/O wrapped as a net.Conn (go-winio, or as much code
// of our own on x/sys/windows), and what we could not run we could not
// test. Loopback TCP runs under Wine, so the whole path — the endpoint
// file, the token, gRPC and HTTP over it, a refused token — is tested the
// way it runs. A loopback port is open to every local user, so the token is
// what keeps them out: 32 random bytes, written only to a file whose ACL
// names this user alone, checked (in constant time) on each connection
// before a byte reaches the gRPC or HTTP server behind it, so a stranger
// gets no further than the refusal. Windows 10's AF_UNIX sockets are not
// used even where they exist: their files' ACLs are whatever the directory
// gives, and one transport on Windows is one to test.
//
// The token never appears in a log, an argument or an error: it travels
// only in the file and on the connection.
package localsock

import (
	"errors"

	"github.com/palyra/palyra-go/internal/unixsock"
)

// Errors Dial and Check return, to be tested with errors.Is.
var (
	// ErrNoSocket: there is no socket (or endpoint file) at the path.
	ErrNoSocket = unixsock.ErrNoSocket
	// ErrNotServed: the path is there but nothing answers on it (its
	// process ended and left it behind).
	ErrNotServed = unixsock.ErrNotServed
	// ErrPermission: the socket or file belongs to another user.
	ErrPermission = unixsock.ErrPermission
	// ErrUnsupported: the system has no Unix sockets; Listen's error
	// wraps it (only where the Unix socket is used).
	ErrUnsupported = unixsock.ErrUnsupported
	// ErrRefused: the endpoint refused this client's token.
	ErrRefused = errors.New("the local API refused the token")
)
