package carrier

import (
	"math/rand/v2"
	"time"
)

// Reconnect backoff parameters (DESIGN.md, "Reconnect").
const (
	BackoffStart = 500 * time.Millisecond
	BackoffCap   = 30 * time.Second
	// StableAfter is how long a session must have been up for the backoff
	// to start over.
	StableAfter = time.Minute
)

// Backoff is exponential backoff with full jitter: the n-th delay is
// uniform in [0, min(BackoffCap, BackoffStart·2ⁿ)). It reads no clock:
// callers tell it how long a session lasted. Not safe for concurrent use.
type Backoff struct {
	rand    func() float64
	attempt int
}

// NewBackoff returns a Backoff drawing from rand (uniform in [0, 1)); nil
// means math/rand/v2.
func NewBackoff(rand func() float64) *Backoff {
	if rand == nil {
		rand = randFloat64
	}
	return &Backoff{rand: rand}
}

func randFloat64() float64 { return rand.Float64() }

// Ceiling is the upper bound of the next delay.
func (b *Backoff) Ceiling() time.Duration {
	// BackoffStart<<6 = 32 s is past the cap; stop doubling there.
	return min(BackoffCap, BackoffStart<<min(b.attempt, 6))
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	ceil := b.Ceiling()
	b.attempt++
	r := b.rand()
	if r < 0 || r >= 1 {
		r = 0
	}
	return time.Duration(r * float64(ceil))
}

// Reset starts over from BackoffStart.
func (b *Backoff) Reset() { b.attempt = 0 }

// SessionEnded tells b how long the session that just ended was up: after
// StableAfter or more, b starts over.
func (b *Backoff) SessionEnded(uptime time.Duration) {
	if uptime >= StableAfter {
		b.Reset()
	}
}
