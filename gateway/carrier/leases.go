package carrier

import (
	"sync"
	"sync/atomic"
	"time"
)

// Leases ends the sessions whose node has sent nothing for a lease TTL.
//
// One goroutine checks every lease, a few times per TTL, while any is
// held; the alternative, a timer per session that each frame from the
// node resets or replaces, costs a timer (or its reset) per lease
// renewal, and the runtime keeps all timers in per-P heaps that it scans
// whole whenever a modified timer comes due, so every session's timer
// makes each scan longer.
type Leases struct {
	ttl   time.Duration
	every time.Duration
	// base is when the Leases began; a lease holds the time since then
	// (monotonic), so that renewing one is an atomic store.
	base time.Time

	mu   sync.Mutex
	held map[*Lease]struct{}
	// stop is non-nil while the checking goroutine runs; closing it
	// stops the goroutine, once no lease is held.
	stop chan struct{}
}

// Lease is one session's lease.
type Lease struct {
	l      *Leases
	heard  atomic.Int64
	paused atomic.Bool
	lapsed atomic.Bool
	expire func()
}

// leaseChecks is how many times per TTL the leases are checked: a silent
// node's session ends between one TTL and 1 + 1/leaseChecks TTLs after
// its last frame.
const leaseChecks = 8

// NewLeases returns an empty set of leases of length ttl.
func NewLeases(ttl time.Duration) *Leases {
	return &Leases{ttl: ttl, every: max(ttl/leaseChecks, time.Millisecond), base: time.Now(), held: make(map[*Lease]struct{})}
}

// Hold starts a lease, as if a frame had just been heard. Once it lapses,
// expire is called (once, on the checking goroutine) and the lease is
// dropped.
func (l *Leases) Hold(expire func()) *Lease {
	ls := &Lease{l: l, expire: expire}
	ls.Heard()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[ls] = struct{}{}
	if l.stop == nil {
		l.stop = make(chan struct{})
		go l.check(l.stop)
	}
	return ls
}

// Heard renews the lease: a frame came from the node.
func (ls *Lease) Heard() { ls.heard.Store(int64(time.Since(ls.l.base))) }

// Pause keeps the lease from lapsing until Resume: the gateway is busy
// with what the node sent (a registration waiting on the store), not
// waiting for the node.
func (ls *Lease) Pause() { ls.paused.Store(true) }

// Resume lets the lease lapse again, a TTL from now: the gateway waits
// for the node's next frame.
func (ls *Lease) Resume() {
	ls.Heard()
	ls.paused.Store(false)
}

// Lapsed reports whether the lease lapsed (and expire was called, or is
// about to be).
func (ls *Lease) Lapsed() bool { return ls.lapsed.Load() }

// Release drops the lease without expiring it: the session ended.
func (ls *Lease) Release() {
	l := ls.l
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, ls)
	l.stopIfNoneLocked()
}

func (l *Leases) stopIfNoneLocked() {
	if len(l.held) == 0 && l.stop != nil {
		close(l.stop)
		l.stop = nil
	}
}

// check expires the lapsed leases every l.every until stop is closed.
func (l *Leases) check(stop <-chan struct{}) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			for _, ls := range l.takeLapsed() {
				ls.expire()
			}
		}
	}
}

// takeLapsed drops and returns the leases not renewed for a TTL.
func (l *Leases) takeLapsed() []*Lease {
	deadline := int64(time.Since(l.base) - l.ttl)
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Lease
	for ls := range l.held {
		if !ls.paused.Load() && ls.heard.Load() < deadline {
			delete(l.held, ls)
			ls.lapsed.Store(true)
			out = append(out, ls)
		}
	}
	l.stopIfNoneLocked()
	return out
}
