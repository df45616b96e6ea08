// Package oneinstance keeps one desktop app per node: the first process
// holds a lock file and serves a private local endpoint
// (internal/localsock: a Unix socket, or on Windows a loopback port behind
// a token), and a second launch, finding the lock held, asks the first
// through that endpoint to bring its window forward and stops there,
// before it opens a second agent on the same keys.
//
// The lock, not the endpoint, decides who is the instance: the operating
// system gives it to one process at a time and drops it when that process
// ends, however it ends. Without it two launches at once (a double click
// twice) would both find no endpoint and both serve one, the second
// replacing the first's, which no later launch could then reach. The
// endpoint is internal/localsock's, the same as the local APIs', because
// Wine and older Windows have no Unix sockets, and a loopback port with a
// token is what runs, and so is tested, under Wine.
//
// A connection is the whole request (it carries no data, so there is
// nothing to parse); the first process answers Shown once its window is up.
package oneinstance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/palyra/palyra-go/internal/localsock"
)

// ErrRunning is what Acquire returns when another process is the running
// instance and has shown its window.
var ErrRunning = errors.New("another instance is running")

// Shown is the running instance's answer.
const Shown = "shown"

// LockFile is the lock file in Acquire's directory; EndpointFile (per OS)
// is the endpoint beside it.
const LockFile = "desktop.lock"

const (
	// answerTimeout bounds how long a second launch waits for the first
	// to serve its endpoint, then to show its window, and how long the
	// first spends on one caller.
	answerTimeout = 5 * time.Second
	// dialInterval is how often a second launch tries the endpoint of a
	// first that holds the lock but does not serve it yet (it is
	// starting).
	dialInterval = 50 * time.Millisecond
)

// testHookWaiting is called each time Acquire found the lock held and
// nothing serving the endpoint yet.
var testHookWaiting = func() {}

// Acquire makes this process the running instance for dir (created if
// missing), holding its lock file and serving its endpoint, or, when
// another process holds the lock, asks that one to show itself and
// returns ErrRunning. A first launch that is still starting (it holds the
// lock, it does not serve yet) is waited for, and one that quits
// meanwhile leaves the instance to this one. Closing the listener gives
// the instance up.
func Acquire(dir string) (net.Listener, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the app's instance directory: %w", err)
	}
	path := filepath.Join(dir, EndpointFile)
	lockPath := filepath.Join(dir, LockFile)
	lock := flock.New(lockPath, flock.SetPermissions(0o600))
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	tick := time.NewTicker(dialInterval)
	defer tick.Stop()
	for {
		held, err := lock.TryLock()
		if err != nil {
			return nil, fmt.Errorf("locking the app's instance file %s: %w", lockPath, err)
		}
		if held {
			ln, err := localsock.Listen(path)
			if err != nil {
				lock.Close()
				return nil, fmt.Errorf("claiming the app's instance endpoint: %w", err)
			}
			return &instance{Listener: ln, lock: lock}, nil
		}
		c, err := localsock.Dial(ctx, path)
		if err == nil {
			return nil, waitShown(c, path)
		}
		testHookWaiting()
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("another palyra-desktop holds %s but does not answer on %s within %s: %w",
				lockPath, path, answerTimeout, err)
		}
	}
}

// waitShown reads the running instance's answer on c, which it closes.
func waitShown(c net.Conn, path string) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(answerTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if strings.TrimSpace(line) != Shown {
		return fmt.Errorf("another palyra-desktop serves %s but did not show its window within %s: %w", path, answerTimeout, err)
	}
	return ErrRunning
}

// instance is the running instance's endpoint, which also holds the lock.
type instance struct {
	net.Listener
	lock *flock.Flock
	once sync.Once
	err  error
}

// Close stops serving, then gives up the lock: a launch that finds the
// lock free finds no endpoint of this process's either. A second Close
// returns when the first is done, with its error.
func (i *instance) Close() error {
	i.once.Do(func() {
		// The lock file stays: removing it would let a process that
		// opened it before the removal and one that creates it afresh
		// both hold "the" lock (as internal/dirlock explains).
		i.err = errors.Join(i.Listener.Close(), i.lock.Close())
	})
	return i.err
}

// Serve calls show for each later launch until ctx ends, then closes ln
// (an instance from Acquire is given up by the time it returns). show must
// return once the window is shown (or it gave up).
func Serve(ctx context.Context, ln net.Listener, show func()) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				// The AfterFunc's Close may still be under way.
				ln.Close()
				return nil
			}
			return fmt.Errorf("accepting a later launch: %w", err)
		}
		show()
		_ = c.SetWriteDeadline(time.Now().Add(answerTimeout))
		_, _ = c.Write([]byte(Shown + "\n"))
		c.Close()
	}
}
