//go:build unix

package unixsock

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// checkPrivate refuses a socket directory that is not this user's, or
// that another user could write to: the socket's own mode (0600) is the
// access control of the APIs behind it, and in a directory others can
// write they could replace the socket with their own and answer in the
// server's place.
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("checking socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory (a link or a file is not accepted)", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("socket directory %s belongs to user %d, not to you (user %d); choose a directory of your own", dir, st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("socket directory %s can be written by other users (mode %04o), who could replace the socket; make it private (chmod 700 %s) or choose another", dir, perm, dir)
	}
	return nil
}

// umaskMu serializes the umask changes of listenPrivate.
var umaskMu sync.Mutex

// listenPrivate creates the socket with no access for group and others,
// so there is no moment when another user could connect.
func listenPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
