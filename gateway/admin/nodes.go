package admin

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Event is a node event as the gateway records it.
type Event = events.Event

// Privacy classifies what a capability exposes. The values are the node
// protocol's, so a value this gateway does not know passes through.
type Privacy int32

// The privacy classes, most private last.
const (
	PrivacyUnspecified Privacy = iota
	PrivacyLow
	PrivacyPersonal
	PrivacySensitive
)

// Consent says whether the node's owner must agree to each call. The
// values are the node protocol's.
type Consent int32

// The consent settings.
const (
	ConsentUnspecified Consent = iota
	ConsentDeny
	ConsentAsk
	ConsentAllow
)

// Capability is one entry of a node's manifest, as the node last told it.
type Capability struct {
	// Name is dotted lowercase, e.g. "system.info".
	Name        string
	Description string
	// ArgsSchema is the JSON Schema of the arguments object.
	ArgsSchema string
	Privacy    Privacy
	Enabled    bool
	Consent    Consent
}

// NodeDetail is a node with what it shares and what happened lately.
type NodeDetail struct {
	Node         Node
	Capabilities []Capability
	// RecentEvents are the node's latest events, newest last.
	RecentEvents []Event
}

// transport names the carrier the node is connected over, or "".
func (s *Service) transport(id identity.DeviceID) string {
	if s.cfg.Nodes == nil {
		return ""
	}
	return s.cfg.Nodes.Node(id).Transport
}

// node is n with its presence: online here, or held by the gateway
// holders names.
func (s *Service) node(n store.Node, holders map[identity.DeviceID]string) Node {
	return Node{
		DeviceID:  n.DeviceID,
		Name:      n.Name,
		Platform:  n.Platform,
		Version:   n.Version,
		Online:    s.cfg.Sessions.Online(n.DeviceID) || holders[n.DeviceID] != "",
		LastSeen:  n.LastSeen,
		Transport: s.transport(n.DeviceID),
		Gateway:   holders[n.DeviceID],
	}
}

// holders is Config.Holders' answer, or none: a listing shows at least
// this gateway's own nodes when the routes cannot be read.
func (s *Service) holders(ctx context.Context) map[identity.DeviceID]string {
	if s.cfg.Holders == nil {
		return nil
	}
	h, err := s.cfg.Holders(ctx)
	if err != nil {
		s.cfg.Logger.Warn("reading which gateway holds which node; listing this gateway's own", "err", err)
		return nil
	}
	return h
}

// DescribeNode returns a node with its capabilities and recent events.
func (s *Service) DescribeNode(ctx context.Context, deviceID string) (NodeDetail, error) {
	id, err := parseDeviceID(deviceID)
	if err != nil {
		return NodeDetail{}, err
	}
	nodes, err := s.cfg.Store.ListNodes(ctx)
	if err != nil {
		return NodeDetail{}, s.internal("listing nodes", err)
	}
	var out NodeDetail
	found := false
	for _, n := range nodes {
		if n.DeviceID == id {
			out.Node, found = s.node(n, s.holders(ctx)), true
		}
	}
	if !found {
		return NodeDetail{}, &NotFoundError{What: "node", ID: id.String()}
	}
	if s.cfg.Nodes != nil {
		for _, c := range s.cfg.Nodes.Node(id).Capabilities {
			out.Capabilities = append(out.Capabilities, capability(c))
		}
	}
	if s.cfg.Events != nil {
		out.RecentEvents = s.cfg.Events.Recent(id)
	}
	return out, nil
}

func capability(c *nodev1.Capability) Capability {
	return Capability{
		Name:        c.GetName(),
		Description: c.GetDescription(),
		ArgsSchema:  c.GetArgsSchema(),
		Privacy:     Privacy(c.GetPrivacy()),
		Enabled:     c.GetEnabled(),
		Consent:     Consent(c.GetConsent()),
	}
}

// Invocation is a call of a capability on a node.
type Invocation struct {
	DeviceID   string
	Capability string
	// Args is a JSON object; empty means {}.
	Args json.RawMessage
	// Timeout bounds the wait for the result; 0 means the gateway's
	// default.
	Timeout time.Duration
	// QueueTTL, if the node is offline, keeps the call this long and
	// delivers it when the node reconnects; 0 fails at once with
	// "offline".
	QueueTTL time.Duration
	// Caller names who asks, for the audit log; default "gateway admin".
	Caller string
}

// InvokeResult is a call's outcome. A call the node refused or that failed
// there is a result (OK false, with ErrorCode and ErrorMessage), not an
// error.
type InvokeResult struct {
	RequestID string
	OK        bool
	// Output is JSON, when OK.
	Output       json.RawMessage
	ErrorCode    string
	ErrorMessage string
	// Queued says the call waited in the offline queue.
	Queued bool
}

// Invoke runs a capability on a node and waits for its result.
func (s *Service) Invoke(ctx context.Context, inv Invocation) (InvokeResult, error) {
	if s.cfg.Nodes == nil {
		return InvokeResult{}, refuse(ErrUnavailable, nil, "this gateway does not run invocations")
	}
	id, err := parseDeviceID(inv.DeviceID)
	if err != nil {
		return InvokeResult{}, err
	}
	if inv.Timeout < 0 || inv.QueueTTL < 0 {
		return InvokeResult{}, invalid("timeout", "timeout and queue TTL must not be negative")
	}
	caller := inv.Caller
	if caller == "" {
		caller = "gateway admin"
	}
	resp, err := s.cfg.Nodes.Invoke(ctx, dispatch.Request{
		DeviceID:   id,
		Capability: inv.Capability,
		Args:       inv.Args,
		Timeout:    inv.Timeout,
		QueueTTL:   inv.QueueTTL,
		Caller:     caller,
	})
	switch {
	case err == nil:
	case errors.Is(err, dispatch.ErrUnknownDevice):
		return InvokeResult{}, &NotFoundError{What: "device", ID: id.String()}
	case errors.Is(err, dispatch.ErrRevoked):
		return InvokeResult{}, refuse(ErrRevoked, err, "device %s is revoked", id)
	case errors.Is(err, dispatch.ErrInvalidArgs):
		return InvokeResult{}, &InvalidArgumentError{Argument: "args", Err: err}
	case errors.Is(err, dispatch.ErrNoCapability):
		return InvokeResult{}, &InvalidArgumentError{Argument: "capability", Err: err}
	case ctx.Err() != nil:
		return InvokeResult{}, ctx.Err()
	default:
		return InvokeResult{}, s.internal("invoking", err)
	}
	r := resp.Result
	return InvokeResult{
		RequestID:    resp.RequestID,
		OK:           r.GetOk(),
		Output:       r.GetOutputJson(),
		ErrorCode:    r.GetErrorCode(),
		ErrorMessage: r.GetErrorMessage(),
		Queued:       resp.Queued,
	}, nil
}

// WatchEvents delivers node events (one device's, or every device's when
// deviceID is "") from the moment it returns until ctx ends; then the
// channel is closed.
func (s *Service) WatchEvents(ctx context.Context, deviceID string) (<-chan Event, error) {
	if s.cfg.Events == nil {
		return nil, refuse(ErrUnavailable, nil, "this gateway has no event stream")
	}
	var id identity.DeviceID
	if deviceID != "" {
		var err error
		if id, err = parseDeviceID(deviceID); err != nil {
			return nil, err
		}
	}
	return s.cfg.Events.Watch(ctx, id), nil
}
