package carrier

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// defaultLeaseTTL is assumed when Welcome names none.
const defaultLeaseTTL = 30 * time.Second

// How fast the node notices a gateway that vanished without a word (the
// path dropped every packet, the laptop changed networks, the gateway's
// machine lost power). The gateway answers every renewal, so a session that
// hears nothing for SilenceLimit is dead, whatever lease the gateway
// granted: a 30 s lease is how long the gateway waits for the node, not
// how long the node should show "connected" over a dead path. Renewals go
// every SilenceLimit/3, so two lost renewals (or answers) in a row are
// forgiven and the third's answer still has a second or more to arrive.
// With a shorter lease both scale down with it (TTL and TTL/3, as before).
const (
	// SilenceLimit: the node gives up on a session after this long
	// without any frame from the gateway; with the carrier's own timers
	// (QUIC's idle timeout, gRPC's keepalive) the dead session is gone
	// within about 15 s.
	SilenceLimit = 12 * time.Second
	// ProbeTimeout bounds the wait for the answer to a Probe: longer than
	// any round trip a working path has, short enough that a node on a
	// network that changed under it redials within a couple of seconds.
	ProbeTimeout = 2 * time.Second
	// HandshakeIdleTimeout ends a dial that hears nothing from the
	// gateway for this long (QUIC's handshake idle timeout; the TCP
	// connect of gRPC). It is short so that a node retrying through an
	// outage starts fresh attempts often: inside one attempt the
	// retransmissions of QUIC's Initial and TCP's SYN back off
	// exponentially, and a path that returns late in a long attempt
	// would wait seconds for the next one. Any answer resets QUIC's
	// timer, so a slow but live link is not cut short.
	HandshakeIdleTimeout = 3 * time.Second
)

// Session is what a carrier keeps of a registered session beside its wire:
// what Welcome said, the lease and the calls' handler. The carrier tells it
// of every frame from the gateway (Alive) and gives it the way to send one.
type Session struct {
	log     *slog.Logger
	welcome *nodev1.Welcome
	address string
	ttl     time.Duration
	// skew is the gateway's clock minus ours, from Welcome, for reading
	// call deadlines.
	skew   time.Duration
	invoke InvokeHandler
	send   func(*nodev1.Frame) error
	// alive holds a sign of life from the gateway for KeepLease.
	alive chan struct{}

	// heardMu guards heard.
	heardMu sync.Mutex
	// heard is closed and replaced at every frame from the gateway, for
	// Probe.
	heard chan struct{}
	// seq numbers the renewals KeepLease and Probe send.
	seq atomic.Uint64

	calls sessionCalls
}

// NewSession reads the gateway's Welcome (the lease TTL, its clock) for a
// session registered with cfg, which Validate has filled in, and logs the
// registration with logAttrs. send writes one frame on the session's
// control channel.
func NewSession(cfg Config, w *nodev1.Welcome, send func(*nodev1.Frame) error, logAttrs ...any) *Session {
	ttl := time.Duration(w.GetLeaseTtlMs()) * time.Millisecond
	if ttl <= 0 {
		ttl = defaultLeaseTTL
	}
	log := cfg.Logger.With(append([]any{"gateway", w.GetGatewayName()}, logAttrs...)...)
	log.Info("registered with gateway", "lease_ttl", ttl)
	s := &Session{
		log:     log,
		welcome: w,
		address: cfg.address,
		ttl:     ttl,
		skew:    time.UnixMilli(w.GetServerTimeUnixMs()).Sub(cfg.Now()),
		invoke:  cfg.Invoke,
		send:    send,
		alive:   make(chan struct{}, 1),
		heard:   make(chan struct{}),
	}
	s.calls.init(cfg.Calls)
	return s
}

// Welcome is what the gateway answered the registration with.
func (s *Session) Welcome() *nodev1.Welcome { return s.welcome }

// Address is the gateway address the session was dialed at (DialEach's).
func (s *Session) Address() string { return s.address }

// Log is the configured logger, with the gateway's name.
func (s *Session) Log() *slog.Logger { return s.log }

// TTL is the lease's lifetime.
func (s *Session) TTL() time.Duration { return s.ttl }

// Alive tells KeepLease (and a waiting Probe) that a frame arrived from
// the gateway.
func (s *Session) Alive() {
	select {
	case s.alive <- struct{}{}:
	default:
	}
	s.heardMu.Lock()
	close(s.heard)
	s.heard = make(chan struct{})
	s.heardMu.Unlock()
}

// silence is how long KeepLease waits for a frame before it gives up on
// the session: SilenceLimit, or the lease if the gateway granted a
// shorter one.
func (s *Session) silence() time.Duration { return min(s.ttl, SilenceLimit) }

// KeepLease sends a LeaseRenewal every third of the silence limit (the
// lease TTL or SilenceLimit, whichever is shorter) until ctx ends, and then
// returns context.Cause(ctx): the carrier ends ctx with the reason when
// its reader stops. The gateway answers every renewal, so a silence limit
// without Alive means it is gone: KeepLease then returns an error wrapping
// ErrLeaseExpired, for the carrier to end the session. A renewal that
// cannot be sent ends it too, unless ctx ended meanwhile (the reader knows
// better why).
//
// One timer serves both the renewals and the silence limit, and a frame
// from the gateway only notes the time: a process running thousands of
// sessions (the bench, an embedder of many nodes) keeps every timer in the
// runtime's per-core heaps, and the runtime scans a whole heap whenever a
// timer that was moved comes due; those scans were a quarter of the CPU
// of 3,000 idle nodes in one process, with a second timer per session
// moved at every frame.
func (s *Session) KeepLease(ctx context.Context) error {
	silence := s.silence()
	every := silence / 3
	heard := time.Now()
	renewAt := heard.Add(every)
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.alive:
			heard = time.Now()
		case <-timer.C:
			now := time.Now()
			if now.Sub(heard) >= silence {
				return fmt.Errorf("%w: no answer from the gateway for %v", ErrLeaseExpired, silence)
			}
			if !now.Before(renewAt) {
				if err := s.renew(); err != nil {
					if ctx.Err() != nil {
						return context.Cause(ctx)
					}
					return err
				}
				renewAt = now.Add(every)
			}
			timer.Reset(min(renewAt.Sub(now), heard.Add(silence).Sub(now)))
		}
	}
}

// renew sends the next LeaseRenewal.
func (s *Session) renew() error {
	f := &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: s.seq.Add(1)}}}
	if err := s.send(f); err != nil {
		return fmt.Errorf("renewing lease: %w", err)
	}
	return nil
}

// Probe checks that the gateway still answers: it renews the lease at once
// and waits (at most ProbeTimeout, or until ctx ends) for a frame from the
// gateway. It returns an error wrapping ErrLeaseExpired if none came, for
// a session that may have died with a change of network. The session goes
// on either way; the caller closes it.
func (s *Session) Probe(ctx context.Context) error {
	s.heardMu.Lock()
	heard := s.heard
	s.heardMu.Unlock()
	if err := s.renew(); err != nil {
		return fmt.Errorf("probing the gateway: %w", err)
	}
	t := time.NewTimer(ProbeTimeout)
	defer t.Stop()
	select {
	case <-heard:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("probing the gateway: %w", context.Cause(ctx))
	case <-t.C:
		return fmt.Errorf("probing the gateway: %w: no answer for %v", ErrLeaseExpired, ProbeTimeout)
	}
}

// SendCapabilities replaces the node's manifest at the gateway.
func (s *Session) SendCapabilities(caps []*nodev1.Capability) error {
	f := &nodev1.Frame{Body: &nodev1.Frame_CapabilitiesChanged{CapabilitiesChanged: &nodev1.CapabilitiesChanged{Capabilities: caps}}}
	if err := s.send(f); err != nil {
		return fmt.Errorf("sending capabilities: %w", err)
	}
	return nil
}

// SendEvent reports an event to the gateway.
func (s *Session) SendEvent(ev *nodev1.NodeEvent) error {
	if err := s.send(&nodev1.Frame{Body: &nodev1.Frame_Event{Event: ev}}); err != nil {
		return fmt.Errorf("sending event: %w", err)
	}
	return nil
}
