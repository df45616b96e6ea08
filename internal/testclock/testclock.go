// Package testclock is a stopped clock for tests: its time moves only when
// the test moves it, so expiry and lifetimes can be checked without
// waiting.
package testclock

import (
	"sync"
	"time"
)

// Clock is a time source, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock stopped at the current time, to the millisecond
// (the resolution the store keeps).
func New() *Clock { return &Clock{now: time.Now().Truncate(time.Millisecond)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
