// Package dirlock gives one process at a time a directory of state (the
// gateway's data directory, a node's config directory): an exclusive
// advisory lock (github.com/gofrs/flock) on a lock file in it that holds the
// owner's PID, so that a second process is refused with a message naming
// the first. The operating system drops the lock when its holder exits,
// however it exits, so a crash leaves nothing to clean up.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// ErrLocked is what Acquire's error wraps when another process holds the
// directory.
var ErrLocked = errors.New("directory in use")

// Lock is a held directory lock.
type Lock struct {
	f *flock.Flock
}

// Acquire locks dir (which must exist) for this process, writing the PID
// into dir/name. what names the kind of process in the refusal: "another
// gateway (pid 1234) is using /var/lib/palyra".
func Acquire(dir, name, what string) (*Lock, error) {
	path := filepath.Join(dir, name)
	f := flock.New(path, flock.SetPermissions(0o600))
	locked, err := f.TryLock()
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if !locked {
		if pid := holder(path); pid != 0 {
			return nil, fmt.Errorf("another %s (pid %d) is using %s: stop it first, or use another directory: %w", what, pid, dir, ErrLocked)
		}
		return nil, fmt.Errorf("another %s is using %s: stop it first, or use another directory: %w", what, dir, ErrLocked)
	}
	// The PID is for the message of the next process only: the lock, not
	// the file's content, decides who owns the directory.
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// holder is the PID the lock file names, or 0.
func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Release gives the directory up. The lock file stays: removing it would
// let a process that opened it before the removal and one that creates it
// afresh both hold "the" lock.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
