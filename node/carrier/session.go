package carrier

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/palyra/palyra-go/internal/callcode"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// defaultLeaseTTL is assumed when Welcome names none.
const defaultLeaseTTL = 30 * time.Second

// Session is what a carrier keeps of a registered session beside its wire:
// what Welcome said, the lease and the calls' handler. The carrier tells it
// of every frame from the gateway (Alive) and gives it the way to send one.
type Session struct {
	log     *slog.Logger
	welcome *nodev1.Welcome
	ttl     time.Duration
	// skew is the gateway's clock minus ours, from Welcome, for reading
	// call deadlines.
	skew   time.Duration
	invoke InvokeHandler
	send   func(*nodev1.Frame) error
	// alive holds a sign of life from the gateway for KeepLease.
	alive chan struct{}
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
	return &Session{
		log:     log,
		welcome: w,
		ttl:     ttl,
		skew:    time.UnixMilli(w.GetServerTimeUnixMs()).Sub(cfg.Now()),
		invoke:  cfg.Invoke,
		send:    send,
		alive:   make(chan struct{}, 1),
	}
}

// Welcome is what the gateway answered the registration with.
func (s *Session) Welcome() *nodev1.Welcome { return s.welcome }

// Log is the configured logger, with the gateway's name.
func (s *Session) Log() *slog.Logger { return s.log }

// TTL is the lease's lifetime.
func (s *Session) TTL() time.Duration { return s.ttl }

// Alive tells KeepLease that a frame arrived from the gateway.
func (s *Session) Alive() {
	select {
	case s.alive <- struct{}{}:
	default:
	}
}

// KeepLease sends a LeaseRenewal every TTL/3 until ctx ends, and then
// returns context.Cause(ctx): the carrier ends ctx with the reason when
// its reader stops. The gateway answers every renewal, so a whole TTL
// without Alive means it is gone: KeepLease then returns an error wrapping
// ErrLeaseExpired, for the carrier to end the session. A renewal that
// cannot be sent ends it too, unless ctx ended meanwhile (the reader knows
// better why).
func (s *Session) KeepLease(ctx context.Context) error {
	ticker := time.NewTicker(s.ttl / 3)
	defer ticker.Stop()
	lease := time.NewTimer(s.ttl)
	defer lease.Stop()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.alive:
			lease.Reset(s.ttl)
		case <-lease.C:
			return fmt.Errorf("%w: no answer from the gateway for %v", ErrLeaseExpired, s.ttl)
		case <-ticker.C:
			seq++
			f := &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: seq}}}
			if err := s.send(f); err != nil {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				return fmt.Errorf("renewing lease: %w", err)
			}
		}
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

// RunCall runs inv with the configured InvokeHandler and returns its
// result, carrying inv's request ID. The call's context is ctx, ended also
// at inv's deadline, which is on the gateway's clock. Without a handler
// the node refuses the call (unknown_capability); a handler that returns
// no result fails it. cause is context.Cause of the call's context when
// the handler returned: nil if it had not ended, context.DeadlineExceeded
// if its deadline passed, otherwise why ctx ended. The carrier decides from
// it whether anyone still waits for the result.
func (s *Session) RunCall(ctx context.Context, inv *nodev1.Invoke, progress func(message string)) (res *nodev1.Result, cause error) {
	if d := inv.GetDeadlineUnixMs(); d > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadline(ctx, time.UnixMilli(d).Add(-s.skew))
		defer stop()
	}
	if s.invoke == nil {
		res = &nodev1.Result{ErrorCode: callcode.UnknownCapability, ErrorMessage: "this node shares no capabilities"}
	} else {
		res = s.invoke(ctx, inv, progress)
	}
	if res == nil {
		res = &nodev1.Result{ErrorCode: callcode.Failed, ErrorMessage: "the capability returned no result"}
	}
	res.RequestId = inv.GetRequestId()
	return res, context.Cause(ctx)
}
