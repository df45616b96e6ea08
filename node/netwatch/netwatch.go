// Package netwatch tells the node agent when the network may have changed
// under it: the machine woke from sleep, or an address, route or link came
// or went. A session that was up before such an event may be dead, and an
// agent waiting out its reconnect backoff should try at once instead.
//
// Sources, by platform: on Linux, logind's PrepareForSleep(false) on the
// system bus (DBUS_SYSTEM_BUS_ADDRESS, when set, names the bus) and a
// NETLINK_ROUTE socket; on macOS, the route socket; on Windows,
// NotifyIpInterfaceChange (iphlpapi) and resume from suspend through
// PowerRegisterSuspendResumeNotification (powrprof), both by callback (the
// Windows system calls are compiled, vetted and cross-built here, but only
// what they report is tested: nothing runs Windows code where the tests
// run); everywhere, a check that wall time did not advance much more than
// monotonic time (the machine slept), for systems without logind or where a
// source could not be opened.
//
// It must stay cgo-free and import nothing of the node's.
package netwatch

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// Kind says what happened.
type Kind string

// The kinds of event.
const (
	// Wake: the machine woke from sleep (logind, or the clock check).
	Wake Kind = "wake"
	// Network: an address, route or link changed.
	Network Kind = "network"
	// asleep: the machine is going to sleep; never delivered, it ends a
	// burst (see debounce).
	asleep Kind = "asleep"
)

// Event is one (debounced) change.
type Event struct {
	Kind Kind
	// Detail says what was seen, for the log ("RTM_NEWADDR", "logind").
	Detail string
	// At is when it was seen (with a monotonic reading).
	At time.Time
}

const (
	// debounceWindow: a change arrives as a burst (an address, then its
	// routes; several interfaces at wake). The first event of a burst is
	// delivered at once; the rest of the burst, if any, as one event at
	// the window's end, so the agent acts on the settled state too.
	debounceWindow = 500 * time.Millisecond
	// clockCheckInterval is how often the clock check reads both clocks:
	// a wake is noticed at most this long after the machine runs again.
	clockCheckInterval = 2 * time.Second
	// clockJumpLimit is how far wall time may run ahead of monotonic time
	// between two checks before it counts as sleep; more than timer
	// jitter and small NTP steps.
	clockJumpLimit = 3 * time.Second
)

// Watch reports events until ctx ends, when the channel is closed. Sources
// that cannot be opened (no system bus, say) are logged and left out; the
// clock check always runs.
func Watch(ctx context.Context, log *slog.Logger) <-chan Event {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	raw := make(chan Event, 16)
	emit := func(k Kind, detail string) {
		select {
		case raw <- Event{Kind: k, Detail: detail, At: time.Now()}:
		default: // a burst is coalesced anyway
		}
	}
	platformSources(ctx, log, emit)
	go watchClock(ctx, clockCheckInterval, systemClock{}, func(d time.Duration) {
		log.Info("wall clock jumped ahead of monotonic time: the machine slept", "slept", d.Round(time.Second))
		emit(Wake, "clock")
	})
	out := make(chan Event)
	go debounce(ctx, raw, out, debounceWindow)
	return out
}

// debounce passes the first event of a burst on at once and coalesces the
// rest of its network changes into one event at the end of window. A wake
// is never held back behind a network change: the first wake of a window
// goes on at once too (and later ones in it are dropped), since the agent
// drops its session on it and every millisecond is spent offline. Going to
// sleep ends the window (what is pending goes on), so that the wake after
// it starts a burst of its own. It closes out when ctx ends.
func debounce(ctx context.Context, in <-chan Event, out chan<- Event, window time.Duration) {
	defer close(out)
	var (
		pending *Event
		timer   <-chan time.Time
		woke    bool // a wake went on in this window
	)
	send := func(ev Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	flush := func() bool {
		timer, woke = nil, false
		if pending == nil {
			return true
		}
		ev := *pending
		pending = nil
		return send(ev)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-in:
			switch {
			case ev.Kind == asleep:
				if !flush() {
					return
				}
			case ev.Kind == Wake && woke:
				// One wake a window: a second one (Windows sends two
				// on resume; logind and the clock check may both
				// see it) would drop the session the first made.
			case timer == nil, ev.Kind == Wake:
				if !send(ev) {
					return
				}
				if timer == nil {
					timer = time.After(window)
				}
				woke = woke || ev.Kind == Wake
				if ev.Kind == Wake {
					pending = nil // the wake stands for what came before it
				}
			case pending == nil:
				pending = &ev
			}
		case <-timer:
			if !flush() {
				return
			}
		}
	}
}

// clock reads wall time (without a monotonic reading) and monotonic time
// (since some fixed point, stopped while the machine sleeps, as Go's
// monotonic clock is on Linux, macOS and Windows).
type clock interface {
	Wall() time.Time
	Mono() time.Duration
}

type systemClock struct{}

var monoStart = time.Now()

func (systemClock) Wall() time.Time     { return time.Now().Round(0) }
func (systemClock) Mono() time.Duration { return time.Since(monoStart) }

// watchClock reads c every interval until ctx ends and calls slept with
// how far wall time ran ahead of monotonic time, when that is more than
// clockJumpLimit.
func watchClock(ctx context.Context, interval time.Duration, c clock, slept func(time.Duration)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	wall, mono := c.Wall(), c.Mono()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w, m := c.Wall(), c.Mono()
		if d := sleptFor(wall, mono, w, m); d > 0 {
			slept(d)
		}
		wall, mono = w, m
	}
}

// sleptFor is how long the machine slept between two readings of both
// clocks, or 0 if wall time did not run more than clockJumpLimit ahead.
func sleptFor(wall0 time.Time, mono0 time.Duration, wall1 time.Time, mono1 time.Duration) time.Duration {
	d := wall1.Sub(wall0) - (mono1 - mono0)
	if d <= clockJumpLimit {
		return 0
	}
	return d
}

// readChanges reads a non-blocking socket of change notifications (fd,
// netlink or route) until ctx ends, and emits a Network event for each
// read that parse finds changes in. The fd goes into an os.File so the
// runtime's poller reads it, and closing the file ends a read.
func readChanges(ctx context.Context, log *slog.Logger, fd int, name string, parse func([]byte) []string, emit func(Kind, string)) {
	f := os.NewFile(uintptr(fd), name)
	context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("reading network changes stopped", "socket", name, "err", err)
				}
				return
			}
			if names := parse(buf[:n]); len(names) > 0 {
				emit(Network, names[0])
			}
		}
	}()
}
