package userdirs

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/palyra/palyra-go/internal/atomicfile"
)

// Record files: the socket a running process serves, written beside its
// state. A command started with another XDG_RUNTIME_DIR than the daemon
// (another login session, sudo, a service) computes another socket path;
// the record lets it find the daemon all the same.
const (
	// GatewaySocketRecord is in the gateway's data directory.
	GatewaySocketRecord = "admin-socket"
	// NodeSocketRecord is in the node's config directory.
	NodeSocketRecord = "node-socket"
)

// RecordSocket writes socket's absolute path to the record file in
// stateDir.
func RecordSocket(stateDir, record, socket string) error {
	abs, err := filepath.Abs(socket)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(stateDir, record), []byte(abs+"\n"), 0o600)
}

// FindSocket returns computed when a socket is there, else the socket the
// record in stateDir names when one is there, else computed (for the
// caller's "not running" message).
func FindSocket(computed, stateDir, record string) string {
	if isSocket(computed) {
		return computed
	}
	b, err := os.ReadFile(filepath.Join(stateDir, record))
	if err != nil {
		return computed
	}
	if recorded := strings.TrimSpace(string(b)); recorded != "" && isSocket(recorded) {
		return recorded
	}
	return computed
}

// isSocket reports whether a local API's endpoint is at path: a socket,
// or on Windows an endpoint file.
func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && (fi.Mode().Type() == os.ModeSocket || runtime.GOOS == "windows" && fi.Mode().IsRegular())
}
