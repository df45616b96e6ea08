// Package carrier is what the gateway's two node carriers (gateway/quiccarrier
// over QUIC, gateway/grpccarrier over gRPC) share: the contract with the
// gateway's node runtime (Runtime, SessionInfo, the Invoke errors) and the
// one table of live node sessions, Registry, that both carriers put their
// sessions in.
//
// A device has at most one current session, on either carrier: Attach makes
// a session current and closes the one it replaces, Disconnect closes every
// session of a revoked or removed device, and Detach ends the current one.
// The carriers keep only their wire handling; each maps an End to its own
// wire signal.
//
// It must not import either carrier, quic-go, gRPC or the gateway's store.
package carrier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// DefaultLeaseTTL is how long a node counts as present without a frame
// when a carrier's Config leaves its lease zero.
const DefaultLeaseTTL = 30 * time.Second

// Errors a carrier's Invoke returns, to be tested with errors.Is.
var (
	// ErrNodeOffline: the device has no registered session.
	ErrNodeOffline = errors.New("node offline")
	// ErrNodeMoved: the device's current session is on the other carrier
	// (it moved, and the runtime may not have heard yet); nothing was sent.
	// It is an ErrNodeOffline to callers that need not tell them apart.
	ErrNodeMoved = fmt.Errorf("%w: its session moved to the other carrier", ErrNodeOffline)
	// ErrNodeGone: the session ended before the node answered.
	ErrNodeGone = errors.New("node disconnected during the call")
	// ErrBadAnswer: the node answered with something other than progress
	// and a result for this request.
	ErrBadAnswer = errors.New("node answered the call incorrectly")
)

// SessionInfo describes a registered node session.
type SessionInfo struct {
	DeviceID                identity.DeviceID
	Name, Platform, Version string
	RemoteAddr              string
	ConnectedAt             time.Time
	CertNotAfter            time.Time
	// Capabilities is the manifest the node registered with, or the last
	// one it sent.
	Capabilities []*nodev1.Capability
	Transport    string // TransportQUIC or TransportGRPC
	// Epoch is the session's attach number: every Attach takes a larger
	// one, so of two sessions of a device the later has the larger Epoch.
	// Zero until the session is attached.
	Epoch uint64
}

// Runtime is what the gateway's node runtime implements to learn about
// sessions. The presence calls (NodeRegistered, NodeReady, NodeGone) are
// serialized per device, so for one device they arrive in order; those of
// different devices run at the same time. They must not call back into the
// Registry except Disconnect, Sessions and Count.
type Runtime interface {
	// NodeRegistered is called when a node registers; returning an error
	// refuses it. An error wrapping identity.ErrRevoked is refused as a
	// revocation.
	NodeRegistered(ctx context.Context, s SessionInfo) error
	// NodeRenewed is called for every lease renewal.
	NodeRenewed(id identity.DeviceID, at time.Time)
	// NodeGone is called once for every registered session that ends,
	// unless a newer session of the same device replaced it. s is the
	// session's registration.
	NodeGone(s SessionInfo, at time.Time, reason string)
	// NodeReady is called once the node has been welcomed: from now on
	// the carrier's Invoke reaches it.
	NodeReady(s SessionInfo)
	// RenewCertificate handles a CSR sent over the authenticated session of
	// device id and returns the new certificate (DER). It must issue only
	// for the same device's key.
	RenewCertificate(ctx context.Context, id identity.DeviceID, csrDER []byte) (certDER []byte, err error)
	// CapabilitiesChanged is called when the node sends a new manifest.
	CapabilitiesChanged(id identity.DeviceID, caps []*nodev1.Capability)
	// NodeEvent is called for every event the node reports.
	NodeEvent(id identity.DeviceID, ev *nodev1.NodeEvent)
}

// EndKind is why a session was ended by the gateway.
type EndKind int

// The ends a session can have; each carrier signals them to the node in
// its own way (a QUIC application error code, a gRPC status).
const (
	// EndRevoked: the device was revoked or removed (Disconnect), or its
	// registration was refused as revoked.
	EndRevoked EndKind = iota + 1
	// EndReplaced: a newer session of the same device was attached.
	EndReplaced
	// EndLeaseExpired: the node sent nothing for a lease.
	EndLeaseExpired
	// EndShutdown: the carrier is shutting down.
	EndShutdown
	// EndProtocol: the node broke the protocol.
	EndProtocol
	// EndRefused: the runtime refused the registration.
	EndRefused
	// EndNotReading: the node does not read what it is sent.
	EndNotReading
	// EndLost: sending to the node failed.
	EndLost
	// EndBusy: the registration could not be served now (ErrBusy); the
	// node was told when to retry.
	EndBusy
)

// End records how the gateway ended a session.
type End struct {
	Kind EndKind
	// Message is what the node is told.
	Message string
	// Reason is what the runtime hears in NodeGone.
	Reason string
	// ReconnectWithin, on EndShutdown, is the window the node is asked to
	// come back within (a GoAway), spreading the returns; 0: none.
	ReconnectWithin time.Duration
}

// Messages of the ends the Registry itself decides.
const (
	RevokedReason   = "device revoked"
	ShutdownMessage = "gateway shutting down"
	ReplacedMessage = "replaced by a newer session"
	replacedReason  = "replaced by a newer session of the same device"
)
