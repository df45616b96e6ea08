package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/gateway/cluster"
	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// nodeRuntime connects the sessions of both carriers (QUIC and gRPC, kept
// in the one carrier.Registry) to the store and the dispatcher: it records
// what nodes say about themselves, makes them reachable through the carrier
// they came over, and renews certificates for authenticated devices.
type nodeRuntime struct {
	g *Gateway
	// events holds each device's budget of events, so a node cannot flood
	// the event log and its watchers.
	events eventBudgets
}

var _ carrier.Runtime = (*nodeRuntime)(nil)

// NodeRegistered records the registration before the node is welcomed,
// in a group commit with the others of a storm (registrations.Writer).
func (r *nodeRuntime) NodeRegistered(ctx context.Context, s carrier.SessionInfo) error {
	err := r.g.registrations.Upsert(ctx, store.Node{
		DeviceID: s.DeviceID,
		Name:     s.Name,
		Platform: s.Platform,
		Version:  s.Version,
		LastSeen: s.ConnectedAt,
	})
	switch {
	case errors.Is(err, store.ErrDeviceRevoked):
		// Revoked since its handshake: the node must hear that it is
		// revoked (and stop), not that its registration was refused.
		return fmt.Errorf("recording node %s: %w: %w", s.DeviceID, identity.ErrRevoked, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("recording node %s: %w", s.DeviceID, err)
	case err != nil:
		// The store failed, not the device: it is asked to come back.
		return carrier.Busy(fmt.Errorf("recording node %s: %w", s.DeviceID, err))
	}
	return nil
}

// NodeRenewed notes the renewal in memory only: the lease is granted
// without waiting for the disk, and the presence tracker writes last-seen
// times in batches.
func (r *nodeRuntime) NodeRenewed(id identity.DeviceID, at time.Time) {
	r.g.presence.Seen(id, at)
}

func (r *nodeRuntime) NodeGone(s carrier.SessionInfo, at time.Time, reason string) {
	// The registry tells of the current session's end only, so the node is
	// gone even if the dispatcher still reaches it through the carrier of
	// an older session (its new one ended before it was made reachable).
	r.g.dispatch.Detach(s.DeviceID, reason)
	r.g.presence.Gone(s.DeviceID, at)
	if r.g.cluster != nil && s.Epoch != 0 {
		r.g.cluster.Detached(cluster.Session{DeviceID: s.DeviceID, Epoch: s.Epoch})
	}
}

// carrier is the carrier that reaches sessions of transport.
func (r *nodeRuntime) carrier(transport string) dispatch.Carrier {
	if transport == wire.TransportGRPC {
		return r.g.grpcNodes
	}
	return r.g.nodes
}

func (r *nodeRuntime) NodeReady(s carrier.SessionInfo) {
	r.g.dispatch.Attach(s.DeviceID, s.Transport, r.carrier(s.Transport), s.Capabilities)
	// The other gateways of the database learn that this one holds it.
	if r.g.cluster != nil {
		r.g.cluster.Attached(cluster.Session{DeviceID: s.DeviceID, Epoch: s.Epoch})
	}
}

func (r *nodeRuntime) CapabilitiesChanged(id identity.DeviceID, caps []*nodev1.Capability) {
	r.g.dispatch.SetCapabilities(id, caps)
}

// A node may report eventBurst events at once and eventRate a second on
// average; beyond that its events are dropped (its calls' results are not
// events and are never dropped).
const (
	eventRate  = 5.0
	eventBurst = 50.0
)

// eventBudgets is a token bucket per device.
type eventBudgets struct {
	mu      sync.Mutex
	buckets map[identity.DeviceID]*eventBucket
}

type eventBucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token from the device's bucket, if it has one.
func (b *eventBudgets) allow(id identity.DeviceID, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buckets == nil {
		b.buckets = make(map[identity.DeviceID]*eventBucket)
	}
	k := b.buckets[id]
	if k == nil {
		k = &eventBucket{tokens: eventBurst, last: now}
		b.buckets[id] = k
	}
	k.tokens = min(eventBurst, k.tokens+now.Sub(k.last).Seconds()*eventRate)
	k.last = now
	if k.tokens < 1 {
		return false
	}
	k.tokens--
	return true
}

// NodeEvent publishes what a node reports. Its time is the gateway's: a
// node's clock may be off.
func (r *nodeRuntime) NodeEvent(id identity.DeviceID, ev *nodev1.NodeEvent) {
	if !r.events.allow(id, r.g.cfg.Now()) {
		return
	}
	kind := events.KindError
	switch ev.GetKind() {
	case nodev1.NodeEvent_KIND_CAPABILITY_CHANGED:
		kind = events.KindCapabilityChanged
	case nodev1.NodeEvent_KIND_CONSENT:
		kind = events.KindConsent
	}
	r.g.events.Publish(events.Event{
		Time:       r.g.cfg.Now(),
		DeviceID:   id,
		Kind:       kind,
		Capability: ev.GetCapability(),
		RequestID:  ev.GetRequestId(),
		Message:    ev.GetMessage(),
	})
}

// RenewCertificate issues a fresh certificate over an authenticated session,
// for the same key only.
func (r *nodeRuntime) RenewCertificate(ctx context.Context, id identity.DeviceID, csrDER []byte) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", identity.ErrInvalidCSR, err)
	}
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok || identity.DeviceIDFromPublicKey(pub) != id {
		return nil, fmt.Errorf("%w: the request is for another key", identity.ErrInvalidCSR)
	}
	now := r.g.cfg.Now()
	cert, err := r.g.ca.IssueDeviceCertificate(csrDER, identity.IssueOptions{Now: now, Lifetime: r.g.cfg.DeviceCertLifetime, Rand: r.g.cfg.Rand})
	if err != nil {
		return nil, err
	}
	if err := r.g.store.RecordCertificate(ctx, pairingsvc.CertificateRecord(id, cert), now); err != nil {
		return nil, err
	}
	return cert.Raw, nil
}

// Online reports whether the device has a live session.
func (r *nodeRuntime) Online(id identity.DeviceID) bool {
	return r.g.dispatch.Node(id).Online
}

// Disconnect closes the device's live sessions on every carrier.
func (r *nodeRuntime) Disconnect(id identity.DeviceID, reason string) int {
	return r.g.sessions.Disconnect(id, reason)
}
