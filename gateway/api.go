package gateway

import (
	"context"
	"time"

	"github.com/palyra/palyra-go/gateway/admin"
)

// The admin API's types, so that an embedder needs only this package.
type (
	// CodeOptions describe a pairing code to mint.
	CodeOptions = admin.CodeOptions
	// PairingCode is a minted pairing code: PIN, link, expiry.
	PairingCode = admin.Code
	// PairingRequest is a device's request to pair.
	PairingRequest = admin.PairingRequest
	// RequestState is where a pairing request stands.
	RequestState = admin.RequestState
	// Device is a paired device.
	Device = admin.Device
	// Node is a node the gateway knows, with its presence.
	Node = admin.Node
	// NodeDetail is a node with its capabilities and recent events.
	NodeDetail = admin.NodeDetail
	// Capability is one entry of a node's manifest.
	Capability = admin.Capability
	// Privacy classifies what a capability exposes.
	Privacy = admin.Privacy
	// Consent says whether a capability's calls need the owner's answer.
	Consent = admin.Consent
	// Event is a node event.
	Event = admin.Event
	// Invocation is a call of a capability on a node.
	Invocation = admin.Invocation
	// InvokeResult is a call's outcome.
	InvokeResult = admin.InvokeResult
	// Call is a queued call, kept with its result.
	Call = admin.Call
	// CallState is where a queued call stands.
	CallState = admin.CallState
	// CallFilter selects queued calls to list.
	CallFilter = admin.CallFilter

	// NotFoundError names what was not found.
	NotFoundError = admin.NotFoundError
	// InvalidArgumentError names the argument refused.
	InvalidArgumentError = admin.InvalidArgumentError
	// DecisionError says why a pairing request could not be decided.
	DecisionError = admin.DecisionError
	// InternalError is a failure of the gateway itself.
	InternalError = admin.InternalError
)

// The pairing request states.
const (
	RequestPending  = admin.RequestPending
	RequestApproved = admin.RequestApproved
	RequestRejected = admin.RequestRejected
	RequestExpired  = admin.RequestExpired
)

// The states of a queued call.
const (
	CallQueued    = admin.CallQueued
	CallDelivered = admin.CallDelivered
	CallDone      = admin.CallDone
	CallFailed    = admin.CallFailed
	CallExpired   = admin.CallExpired
	CallCancelled = admin.CallCancelled
)

// The privacy classes and consent settings of capabilities.
const (
	PrivacyLow       = admin.PrivacyLow
	PrivacyPersonal  = admin.PrivacyPersonal
	PrivacySensitive = admin.PrivacySensitive
	ConsentDeny      = admin.ConsentDeny
	ConsentAsk       = admin.ConsentAsk
	ConsentAllow     = admin.ConsentAllow
)

// The admin API's kinds of refusal, to test with errors.Is (see package
// admin).
var (
	ErrNotFound        = admin.ErrNotFound
	ErrInvalidArgument = admin.ErrInvalidArgument
	ErrAlreadyDecided  = admin.ErrAlreadyDecided
	ErrRequestExpired  = admin.ErrRequestExpired
	ErrRevoked         = admin.ErrRevoked
	ErrUnavailable     = admin.ErrUnavailable
	ErrTooManyCodes    = admin.ErrTooManyCodes
	ErrCannotLink      = admin.ErrCannotLink
	ErrCallEnded       = admin.ErrCallEnded
	ErrInternal        = admin.ErrInternal
)

// The admin API in-process: the calls the admin socket serves, for an
// embedder (the desktop app's local gateway). They use the store, so they
// work from New until Run returns; invocations reach nodes while Run
// serves them.

// MintPairingCode opens a pairing code and returns its PIN and link.
func (g *Gateway) MintPairingCode(ctx context.Context, opts CodeOptions) (PairingCode, error) {
	return g.admin.MintPairingCode(ctx, opts)
}

// PairingRequests lists the pending pairing requests, oldest first, or
// every request with all.
func (g *Gateway) PairingRequests(ctx context.Context, all bool) ([]PairingRequest, error) {
	return g.admin.PairingRequests(ctx, all)
}

// ApprovePairingRequest approves a pending pairing request.
func (g *Gateway) ApprovePairingRequest(ctx context.Context, id string) (PairingRequest, error) {
	return g.admin.ApprovePairingRequest(ctx, id)
}

// RejectPairingRequest rejects a pending pairing request.
func (g *Gateway) RejectPairingRequest(ctx context.Context, id string) (PairingRequest, error) {
	return g.admin.RejectPairingRequest(ctx, id)
}

// Devices lists the paired devices in pairing order, revoked ones
// included.
func (g *Gateway) Devices(ctx context.Context) ([]Device, error) { return g.admin.Devices(ctx) }

// Nodes lists the nodes that have connected, by name.
func (g *Gateway) Nodes(ctx context.Context) ([]Node, error) { return g.admin.Nodes(ctx) }

// DescribeNode returns a node with its capabilities and recent events.
func (g *Gateway) DescribeNode(ctx context.Context, deviceID string) (NodeDetail, error) {
	return g.admin.DescribeNode(ctx, deviceID)
}

// Invoke runs a capability on a node and waits for its result.
func (g *Gateway) Invoke(ctx context.Context, inv Invocation) (InvokeResult, error) {
	return g.admin.Invoke(ctx, inv)
}

// Calls lists queued calls, newest first.
func (g *Gateway) Calls(ctx context.Context, f CallFilter) ([]Call, error) {
	return g.admin.Calls(ctx, f)
}

// GetCall returns a queued call; if it is pending, it waits up to wait for
// its result.
func (g *Gateway) GetCall(ctx context.Context, requestID string, wait time.Duration) (Call, error) {
	return g.admin.GetCall(ctx, requestID, wait)
}

// CancelCall cancels a queued call that has not ended, and returns the
// state it was in and the call.
func (g *Gateway) CancelCall(ctx context.Context, requestID string) (CallState, Call, error) {
	return g.admin.CancelCall(ctx, requestID)
}

// RevokeDevice revokes a device and closes its live sessions.
func (g *Gateway) RevokeDevice(ctx context.Context, deviceID string) (Device, error) {
	return g.admin.RevokeDevice(ctx, deviceID)
}

// RemoveDevice forgets a device; it stays refused.
func (g *Gateway) RemoveDevice(ctx context.Context, deviceID string) error {
	return g.admin.RemoveDevice(ctx, deviceID)
}

// WatchEvents delivers node events (one device's, or all when deviceID is
// "") from now until ctx ends, then closes the channel.
func (g *Gateway) WatchEvents(ctx context.Context, deviceID string) (<-chan Event, error) {
	return g.admin.WatchEvents(ctx, deviceID)
}
