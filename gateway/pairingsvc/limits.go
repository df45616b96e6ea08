package pairingsvc

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/palyra/palyra-go/internal/retryinfo"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/gateway/store"
)

// AuditPairingThrottled is written once when an address starts being
// refused for making too many attempts (not for every refusal: a flood
// must not become a flood of audit rows).
const AuditPairingThrottled = "pairing.throttled"

// admit applies the limits to a call (Pair, Resume or RenewExpired) from
// ctx's peer. Every one of them may be made by anyone, so this comes first:
// a refused call never reaches the exchange, the store or a code's count.
// The device is told why, and when to try again in a RetryInfo detail.
func (s *Service) admit(ctx context.Context) (*limit.Ticket, error) {
	addr := sourceAddr(ctx)
	ticket, err := s.limits.Admit(addr, s.cfg.Now())
	if err == nil {
		return ticket, nil
	}
	var r *limit.Refusal
	if !errors.As(err, &r) {
		return nil, status.Error(codes.Internal, "the gateway could not check its pairing limits")
	}
	if s.cfg.Refused != nil {
		s.cfg.Refused(r.Reason)
	}
	if r.First {
		s.cfg.Logger.Warn("refusing pairing attempts", "remote", addr, "reason", r.Reason, "retry_after", r.RetryAfter)
		if r.Reason == limit.ReasonAddress {
			s.audit(ctx, store.AuditEvent{Kind: AuditPairingThrottled,
				Detail: "too many pairing attempts from " + limit.Source(addr).String() + "; refusing more for now"})
		}
	}
	return nil, refusalStatus(r)
}

// refusalStatus is the gRPC status of a refusal: ResourceExhausted, the
// refusal's words, and the wait as a RetryInfo detail for clients to read.
func refusalStatus(r *limit.Refusal) error {
	return retryinfo.Error(codes.ResourceExhausted, r.Error(), r.RetryAfter)
}

// sourceAddr is the IP address the call came from; the zero Addr (one
// bucket for all such calls) if the transport does not say.
func sourceAddr(ctx context.Context) netip.Addr {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}
	}
	if tcp, ok := p.Addr.(*net.TCPAddr); ok {
		return tcp.AddrPort().Addr()
	}
	if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}

// RunsInProgress is the number of pairing runs admitted and not yet past
// their exchange (a request waiting for approval no longer counts).
func (s *Service) RunsInProgress() int { return s.limits.Running() }

// TrackedAddresses is the number of source addresses the limits keep a
// bucket for.
func (s *Service) TrackedAddresses() int { return s.limits.Addresses() }
