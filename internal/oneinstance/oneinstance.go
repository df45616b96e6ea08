// Package oneinstance keeps one desktop app per node: the first process
// serves a private Unix socket, and a second launch, finding it served,
// asks the first to bring its window forward and stops there, before it
// opens a second agent on the same keys.
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
	"strings"
	"time"

	"github.com/palyra/palyra-go/internal/unixsock"
)

// ErrRunning is what Acquire returns when another process is the running
// instance and has shown its window.
var ErrRunning = errors.New("another instance is running")

// Shown is the running instance's answer.
const Shown = "shown"

// answerTimeout bounds how long a second launch waits for the first to
// show its window, and how long the first spends on one caller.
const answerTimeout = 5 * time.Second

// Acquire makes this process the running instance, listening on path, or,
// when another process serves path, asks it to show itself and returns
// ErrRunning.
func Acquire(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(answerTimeout))
		line, err := bufio.NewReader(c).ReadString('\n')
		if strings.TrimSpace(line) != Shown {
			return nil, fmt.Errorf("another palyra-desktop serves %s but did not show its window within %s: %w", path, answerTimeout, err)
		}
		return nil, ErrRunning
	}
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("claiming the app's instance socket: %w", err)
	}
	return ln, nil
}

// Serve calls show for each later launch until ctx ends, then closes ln.
// show must return once the window is shown (or it gave up).
func Serve(ctx context.Context, ln net.Listener, show func()) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
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
