// Package limit decides which calls to the gateway's Pairing service are
// served at all: a token bucket per source address, kept in a table of
// bounded size, and a cap on runs in progress from all addresses together.
// The Pairing service is the gateway's one entry that anyone may call, so a
// guesser or a flood meets these limits before any exchange, store write or
// attempt count.
//
// It keeps no other state, reads the time only as its callers pass it in,
// and imports nothing of this module.
package limit

import (
	"container/list"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"
)

// Defaults. A person pairing types a PIN once, maybe again after a typo:
// five attempts at once is plenty for that, and one more every ten seconds
// lets them carry on after a pause. A guesser gets six guesses a minute
// from one address instead of thousands a second: the thousand hellos that
// used to reach every open code ten times (and so close them all) in two
// seconds now mostly end in microseconds, and closing every open code from
// one address (ten attempts on each of the hundred selectors, since which
// are open does not show) takes it close to three hours. A run in progress
// costs a goroutine, a CPace exchange and store writes; 32 at once keeps
// that small on a laptop and is far above what people pairing at the same
// time need.
const (
	DefaultBurst       = 5
	DefaultInterval    = 10 * time.Second
	DefaultConcurrency = 32
	// DefaultMaxAddresses bounds the bucket table: about 150 bytes each,
	// so some 1.5 MB at most.
	DefaultMaxAddresses = 10_000
	// BusyRetry is what a device refused for the concurrency cap is told
	// to wait: runs take milliseconds unless a device dawdles, and then
	// the step timeout ends them.
	BusyRetry = 2 * time.Second
)

// ipv6Prefix is how much of an IPv6 address names a source: one host is
// routinely given a whole /64, so single addresses would give it billions
// of buckets.
const ipv6Prefix = 64

// Config sets the limits. Zero fields take the defaults; a negative Burst
// or Concurrency turns that limit off.
type Config struct {
	// Burst is how many attempts one source address may make at once.
	Burst int
	// Interval is how often a source address earns one more attempt, up
	// to Burst.
	Interval time.Duration
	// Concurrency caps the runs admitted and not yet done, from all
	// addresses.
	Concurrency int
	// MaxAddresses bounds the number of addresses with a bucket; when it
	// is reached the least recently seen address is forgotten.
	MaxAddresses int
}

// Reason says which limit refused an attempt; the values are metric labels.
type Reason string

// Reasons for a refusal.
const (
	ReasonAddress Reason = "address_rate" // too many attempts from one address
	ReasonBusy    Reason = "busy"         // too many runs in progress
)

// Refusal is the error of an attempt that is not admitted.
type Refusal struct {
	Reason Reason
	// RetryAfter is when the same attempt would be admitted, in whole
	// seconds: for an address, when its bucket has a token again.
	RetryAfter time.Duration
	// First is set on the first refusal for this reason (this address, or
	// the cap) since an attempt was last admitted, so callers can log and
	// audit a flood once instead of once per attempt.
	First bool
}

// Error is what the device is told.
func (r *Refusal) Error() string {
	secs := int64(r.RetryAfter / time.Second)
	if r.Reason == ReasonBusy {
		return fmt.Sprintf("the gateway is busy with other pairing attempts; try again in %d s", secs)
	}
	return fmt.Sprintf("too many pairing attempts from this address; try again in %d s", secs)
}

// Limiter admits attempts. It is safe for concurrent use.
type Limiter struct {
	cfg Config

	mu sync.Mutex
	// buckets maps a source to its element in lru, whose front is the
	// most recently seen; running counts admitted runs not yet done;
	// busyRefused is set while refusals for the cap go unlogged. All
	// guarded by mu.
	buckets     map[netip.Addr]*list.Element
	lru         *list.List
	running     int
	busyRefused bool
}

// bucket is one source's tokens as of last.
type bucket struct {
	key       netip.Addr
	tokens    float64
	last      time.Time
	throttled bool // refused since its last admitted attempt
}

// New returns a limiter with cfg's limits, defaults filled in.
func New(cfg Config) *Limiter {
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxAddresses <= 0 {
		cfg.MaxAddresses = DefaultMaxAddresses
	}
	return &Limiter{cfg: cfg, buckets: map[netip.Addr]*list.Element{}, lru: list.New()}
}

// Config returns the limits in force, defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// Source is the key addr is limited under: IPv4 (also when mapped into
// IPv6) as it is, IPv6 by its /64, without a zone.
func Source(addr netip.Addr) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, err := addr.Prefix(ipv6Prefix)
		if err == nil {
			return p.Addr()
		}
	}
	return addr
}

// Admit takes a token from addr's bucket and a run slot, or refuses with a
// *Refusal. A refused attempt costs nothing else: an attempt refused by the
// cap keeps its address's token.
func (l *Limiter) Admit(addr netip.Addr, now time.Time) (*Ticket, error) {
	key := Source(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if l.cfg.Burst > 0 {
		b = l.bucketLocked(key, now)
		if b.tokens < 1 {
			first := !b.throttled
			b.throttled = true
			return nil, &Refusal{Reason: ReasonAddress, RetryAfter: l.untilTokenLocked(b), First: first}
		}
	}
	if l.cfg.Concurrency > 0 && l.running >= l.cfg.Concurrency {
		first := !l.busyRefused
		l.busyRefused = true
		return nil, &Refusal{Reason: ReasonBusy, RetryAfter: BusyRetry, First: first}
	}
	if b != nil {
		b.tokens--
		b.throttled = false
	}
	l.running++
	l.busyRefused = false
	return &Ticket{l: l, key: key}, nil
}

// bucketLocked returns key's bucket refilled to now, making one (and room
// for it) if needed, and marks it most recently seen.
func (l *Limiter) bucketLocked(key netip.Addr, now time.Time) *bucket {
	l.forgetFullLocked(now)
	if e, ok := l.buckets[key]; ok {
		b := e.Value.(*bucket)
		l.refillLocked(b, now)
		l.lru.MoveToFront(e)
		return b
	}
	if len(l.buckets) >= l.cfg.MaxAddresses {
		// Forgetting a bucket that is not full gives that address a fresh
		// one; an attacker who can make us forget needs MaxAddresses
		// addresses, which would give it as many buckets anyway, and the
		// cap on runs still holds.
		l.removeLocked(l.lru.Back())
	}
	b := &bucket{key: key, tokens: float64(l.cfg.Burst), last: now}
	l.buckets[key] = l.lru.PushFront(b)
	return b
}

// forgetFullLocked drops the least recently seen buckets that have filled
// up again: a full bucket is what a new address gets, so nothing is lost,
// and the table shrinks once a flood is over. Each bucket is dropped at
// most once, so this is constant time on average.
func (l *Limiter) forgetFullLocked(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		b := e.Value.(*bucket)
		if b.tokens+l.earnedLocked(b, now) < float64(l.cfg.Burst) {
			return
		}
		l.removeLocked(e)
	}
}

func (l *Limiter) removeLocked(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// earnedLocked is how many tokens b has earned since it was last
// refilled. A clock that went back earns nothing.
func (l *Limiter) earnedLocked(b *bucket, now time.Time) float64 {
	d := now.Sub(b.last)
	if d <= 0 {
		return 0
	}
	return float64(d) / float64(l.cfg.Interval)
}

func (l *Limiter) refillLocked(b *bucket, now time.Time) {
	b.tokens = math.Min(float64(l.cfg.Burst), b.tokens+l.earnedLocked(b, now))
	if now.After(b.last) {
		b.last = now
	}
}

// untilTokenLocked is how long until b has a whole token, rounded up to the
// second the device is told.
func (l *Limiter) untilTokenLocked(b *bucket) time.Duration {
	d := time.Duration(math.Ceil((1 - b.tokens) * float64(l.cfg.Interval)))
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

// Running is the number of runs admitted and not yet done.
func (l *Limiter) Running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

// Addresses is the number of source addresses with a bucket.
func (l *Limiter) Addresses() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Ticket is an admitted attempt.
type Ticket struct {
	l   *Limiter
	key netip.Addr

	// done and refunded are guarded by l.mu.
	done, refunded bool
}

// Confirmed gives the attempt's token back, once: the caller proved it
// holds a secret (a pairing code, or a device key), so the attempt was not
// a guess and should not slow down the next device from the same address.
func (t *Ticket) Confirmed(now time.Time) {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if t.refunded || t.l.cfg.Burst <= 0 {
		return
	}
	t.refunded = true
	// A bucket forgotten meanwhile would be full again by now.
	if e, ok := t.l.buckets[t.key]; ok {
		b := e.Value.(*bucket)
		t.l.refillLocked(b, now)
		b.tokens = math.Min(float64(t.l.cfg.Burst), b.tokens+1)
	}
}

// Done ends the run, freeing its slot; later calls do nothing.
func (t *Ticket) Done() {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if !t.done {
		t.done = true
		t.l.running--
	}
}
