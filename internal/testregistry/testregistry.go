// Package testregistry is the gateway's side of a node session, as the
// carriers' tests (quiccarrier over QUIC, grpccarrier over gRPC) need it: a
// carrier.Runtime that puts each call on a channel for the test to read,
// the devices of a test CA, and the session table of a test gateway.
package testregistry

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpki"
	nodequic "github.com/palyra/palyra-go/node/quiccarrier"
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

	Registered chan carrier.SessionInfo
	Ready      chan carrier.SessionInfo
	Renewed    chan identity.DeviceID
	Gone       chan Gone
	Caps       chan []*nodev1.Capability
	Events     chan *nodev1.NodeEvent
}

var _ carrier.Runtime = (*Registry)(nil)

// New makes a Registry that renews certificates from ca (nil refuses).
func New(ca *identity.CA) *Registry {
	return &Registry{
		CA:         ca,
		Registered: make(chan carrier.SessionInfo, depth),
		Ready:      make(chan carrier.SessionInfo, depth),
		Renewed:    make(chan identity.DeviceID, depth),
		Gone:       make(chan Gone, depth),
		Caps:       make(chan []*nodev1.Capability, depth),
		Events:     make(chan *nodev1.NodeEvent, depth),
	}
}

func (r *Registry) NodeRegistered(_ context.Context, s carrier.SessionInfo) error {
	if err := r.Refuse.Load(); err != nil {
		return *err
	}
	r.Registered <- s
	return nil
}

func (r *Registry) NodeReady(s carrier.SessionInfo) {
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

func (r *Registry) NodeGone(s carrier.SessionInfo, _ time.Time, reason string) {
	r.Gone <- Gone{s.DeviceID, reason}
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

// Devices authenticates the devices of a test CA as a gateway does,
// refusing those the test revoked.
type Devices struct {
	CA      *identity.CA
	revoked sync.Map // identity.DeviceID -> bool
}

// Authenticate verifies a device's chain against the CA.
func (d *Devices) Authenticate(raw [][]byte) (identity.DeviceID, error) {
	id, err := identity.VerifyDeviceCertificate(d.CA.Certificate(), raw, time.Now())
	if err != nil {
		return id, err
	}
	if _, ok := d.revoked.Load(id); ok {
		return id, fmt.Errorf("device %s: %w", id, identity.ErrRevoked)
	}
	return id, nil
}

// Revoke makes Authenticate refuse device id as revoked.
func (d *Devices) Revoke(id identity.DeviceID) { d.revoked.Store(id, true) }

// Sessions is a session table that tells rt and authenticates with auth.
func Sessions(t testing.TB, rt carrier.Runtime, auth func([][]byte) (identity.DeviceID, error)) *carrier.Registry {
	t.Helper()
	reg, err := carrier.NewRegistry(carrier.Config{Runtime: rt, Authenticate: auth})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// NodeConfig is the session config of a test node, device d of ca, that
// dials addr and registers with caps.
func NodeConfig(addr string, ca *identity.CA, d *testpki.Device, caps ...*nodev1.Capability) nodequic.Config {
	return nodequic.Config{
		Addresses:         []string{addr},
		ClientCertificate: func() (*tls.Certificate, error) { return d.Cert, nil },
		CACertificate:     ca.Certificate(),
		Register:          &nodev1.RegisterNode{Name: "test node", Platform: "linux/amd64", Version: "0.0.1", Capabilities: caps},
	}
}
