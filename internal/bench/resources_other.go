//go:build !linux

package bench

import (
	"errors"
	"time"
)

var errNotLinux = errors.New("the idle phase reads memory and CPU time from /proc and getrusage, which it does on Linux only")

func rss() (uint64, error) { return 0, errNotLinux }

func cpuTime() (time.Duration, error) { return 0, errNotLinux }
