// Package testregistry is the gateway's side of a node session, as the
// carriers' tests (quiccarrier over QUIC, grpccarrier over gRPC) need it: a
// quiccarrier.Registry that puts each call on a channel for the test to read.
package testregistry

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync/atomic"
	"time"

	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// depth is how many calls of a kind may wait unread. The calls a test
// reads block the session when their channel is full, so a test that
// misses one hangs instead of passing.
const depth = 64

// Gone is one NodeGone call.
type Gone struct {
	ID     identity.DeviceID
	Reason string
}

// Registry records the calls a carrier makes.
type Registry struct {
	// CA issues renewed device certificates; without one, renewal is
	// refused.
	CA *identity.CA
	// Refuse, when set, is the error NodeRegistered fails with.
	Refuse atomic.Pointer[error]

	Registered chan quiccarrier.SessionInfo
	Ready      chan quiccarrier.SessionInfo
	Renewed    chan identity.DeviceID
	Gone       chan Gone
	Caps       chan []*nodev1.Capability
	Events     chan *nodev1.NodeEvent
}

var _ quiccarrier.Registry = (*Registry)(nil)

// New makes a Registry that renews certificates from ca (nil refuses).
func New(ca *identity.CA) *Registry {
	return &Registry{
		CA:         ca,
		Registered: make(chan quiccarrier.SessionInfo, depth),
		Ready:      make(chan quiccarrier.SessionInfo, depth),
		Renewed:    make(chan identity.DeviceID, depth),
		Gone:       make(chan Gone, depth),
		Caps:       make(chan []*nodev1.Capability, depth),
		Events:     make(chan *nodev1.NodeEvent, depth),
	}
}

func (r *Registry) NodeRegistered(_ context.Context, s quiccarrier.SessionInfo) error {
	if err := r.Refuse.Load(); err != nil {
		return *err
	}
	r.Registered <- s
	return nil
}

func (r *Registry) NodeReady(s quiccarrier.SessionInfo) {
	select {
	case r.Ready <- s:
	default: // only some tests wait for it
	}
}

func (r *Registry) NodeRenewed(id identity.DeviceID, _ time.Time) {
	select {
	case r.Renewed <- id:
	default: // tests wait for a few; a lease renews for as long as it runs
	}
}

func (r *Registry) NodeGone(id identity.DeviceID, _ time.Time, reason string) {
	r.Gone <- Gone{id, reason}
}

func (r *Registry) CapabilitiesChanged(_ identity.DeviceID, caps []*nodev1.Capability) {
	r.Caps <- caps
}

func (r *Registry) NodeEvent(_ identity.DeviceID, ev *nodev1.NodeEvent) { r.Events <- ev }

func (r *Registry) RenewCertificate(_ context.Context, id identity.DeviceID, csr []byte) ([]byte, error) {
	if r.CA == nil {
		return nil, errors.New("this registry renews no certificates")
	}
	cert, err := r.CA.IssueDeviceCertificate(csr, identity.IssueOptions{Now: time.Now()})
	if err != nil {
		return nil, err
	}
	if identity.DeviceIDFromPublicKey(cert.PublicKey.(ed25519.PublicKey)) != id {
		return nil, errors.New("another device's key")
	}
	return cert.Raw, nil
}
