// Package connlimit caps what a server holds for clients that have not
// proved who they are yet (TCP connections before a verified client
// certificate, QUIC handshakes in progress), in total and per source, so
// that a flood neither runs the process out of open files or memory nor,
// from one place, takes every slot from everyone else.
//
// A Limiter counts the slots. Listener applies one to a net.Listener: a
// connection over a cap is closed as soon as it is accepted, before any
// TLS work is done for it. ReleaseOnVerified gives a connection's slot back
// once its client presents a certificate the server accepts, so a flood of
// strangers never counts against connections that authenticated. FileLimit
// and Size keep the caps below the process's open-file limit.
//
// A source is an IPv4 address or an IPv6 /64 (Source). The per-source cap
// is what protects everyone else: one source can hold only its share. A
// flood from many sources (at least Max/MaxPerSource of them) can still
// hold every slot, for as long as it keeps refilling them as the server's
// deadlines close them; while it does, new clients of every source are
// refused at accept, though clients that authenticated keep their
// connections.
//
// It must not import the gateway or anything above it.
package connlimit

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLogEvery is how often at most a Limiter logs that it refuses.
const DefaultLogEvery = time.Minute

// Reason says which cap refused a slot; its values are metric labels.
type Reason string

// The caps.
const (
	// Total: every slot is taken.
	Total Reason = "total"
	// PerSource: the source holds its whole share already.
	PerSource Reason = "per_source"
)

// ErrRefused is matched (errors.Is) by every *RefusedError.
var ErrRefused = errors.New("refused: over a connection cap")

// RefusedError is a refusal by a cap.
type RefusedError struct {
	// What is what the Limiter counts, e.g. "unauthenticated TCP connections".
	What   string
	Reason Reason
	// Source is where the refused one came from; invalid when unknown or
	// not to be trusted.
	Source netip.Prefix
	// Limit is the cap that was reached.
	Limit int
}

func (e *RefusedError) Error() string {
	if e.Reason == PerSource {
		return fmt.Sprintf("refused: %s already holds %d %s, the most one source may hold", e.Source, e.Limit, e.What)
	}
	return fmt.Sprintf("refused: %d %s are open, the most allowed at once", e.Limit, e.What)
}

// Is makes every RefusedError match ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Config configures a Limiter.
type Config struct {
	// What names what is counted, in the plural, for logs and errors
	// (e.g. "unauthenticated TCP connections").
	What string
	// Max caps the slots held at once; 0: no cap.
	Max int
	// MaxPerSource caps the slots one source holds at once; 0: no cap.
	MaxPerSource int
	// Refused, if set, hears why each refusal happened (for metrics). It
	// is called on the refusing goroutine, without locks held.
	Refused func(Reason)
	// Logger gets one line at the first refusal and then at most one per
	// LogEvery (default DefaultLogEvery), with the number refused since the
	// line before; nil logs nothing.
	Logger   *slog.Logger
	LogEvery time.Duration
	// Now is the clock of the log's rate limit; default time.Now.
	Now func() time.Time
}

// Limiter counts slots, in total and per source. It is safe for
// concurrent use.
type Limiter struct {
	cfg Config

	mu sync.Mutex
	// held counts the slots held, bySource those of each source holding
	// any (sources holding none are deleted, so the map shrinks back after
	// a flood); guarded by mu.
	held     int
	bySource map[netip.Prefix]int
	// unlogged counts the refusals since the last log line, written at
	// lastLog; guarded by mu.
	unlogged int
	lastLog  time.Time
}

// New returns a Limiter; negative caps are an error.
func New(cfg Config) (*Limiter, error) {
	if cfg.Max < 0 || cfg.MaxPerSource < 0 {
		return nil, fmt.Errorf("connlimit: caps of %s must not be negative (%d, %d per source)", cfg.What, cfg.Max, cfg.MaxPerSource)
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Limiter{cfg: cfg, bySource: make(map[netip.Prefix]int)}, nil
}

// Held is how many slots are held now.
func (l *Limiter) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// Acquire takes a slot for a client from src (see Source; an invalid
// prefix counts only towards the total), or refuses with a *RefusedError.
// The per-source cap is checked first, so a source over its share is
// told so even when every slot is taken too.
func (l *Limiter) Acquire(src netip.Prefix) (*Slot, error) {
	l.mu.Lock()
	var refused *RefusedError
	switch {
	case src.IsValid() && l.cfg.MaxPerSource > 0 && l.bySource[src] >= l.cfg.MaxPerSource:
		refused = &RefusedError{What: l.cfg.What, Reason: PerSource, Source: src, Limit: l.cfg.MaxPerSource}
	case l.cfg.Max > 0 && l.held >= l.cfg.Max:
		refused = &RefusedError{What: l.cfg.What, Reason: Total, Source: src, Limit: l.cfg.Max}
	}
	if refused == nil {
		l.held++
		if src.IsValid() {
			l.bySource[src]++
		}
		l.mu.Unlock()
		return &Slot{l: l, src: src}, nil
	}
	l.unlogged++
	now := l.cfg.Now()
	var logged, held int
	if l.lastLog.IsZero() || now.Sub(l.lastLog) >= l.cfg.LogEvery {
		logged, held = l.unlogged, l.held
		l.unlogged, l.lastLog = 0, now
	}
	l.mu.Unlock()
	if l.cfg.Refused != nil {
		l.cfg.Refused(refused.Reason)
	}
	if logged > 0 {
		l.cfg.Logger.Warn(refused.Error(), "cap", string(refused.Reason), "held", held,
			"refused_since_last_line", logged, "next_line_after", l.cfg.LogEvery.String())
	}
	return nil, refused
}

// Slot is one held slot; Release gives it back.
type Slot struct {
	l        *Limiter
	src      netip.Prefix
	released atomic.Bool
}

// Release gives the slot back; only the first call counts, so both a
// connection's authentication and its close may call it. A nil Slot does
// nothing.
func (s *Slot) Release() {
	if s == nil || !s.released.CompareAndSwap(false, true) {
		return
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held--
	if s.src.IsValid() {
		if n := l.bySource[s.src] - 1; n > 0 {
			l.bySource[s.src] = n
		} else {
			delete(l.bySource, s.src)
		}
	}
}

// Source is what a client at addr counts against: its IPv4 address
// (IPv4-mapped IPv6 included), or the /64 its IPv6 address is in, since
// one subscriber usually has a whole /64 and could otherwise flood from
// 2^64 addresses. An address that is not IP gives an invalid prefix.
func Source(addr net.Addr) netip.Prefix {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	case nil:
		return netip.Prefix{}
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Prefix{}
		}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
