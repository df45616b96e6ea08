// Package admin is the gateway's administration, as a Go API: minting
// pairing codes, deciding pairing requests, listing nodes and devices,
// describing nodes and invoking their capabilities, listing, waiting for
// and cancelling queued calls, revoking and removing devices, watching
// node events. Its results are Go types and its errors
// are typed (errors.go), so an embedder calls it in-process; the gRPC
// service on the admin socket (gateway/adminrpc) is a thin adapter over it.
package admin

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
)

// Bounds on a pairing code's lifetime.
const (
	DefaultCodeTTL = 10 * time.Minute
	MinCodeTTL     = 30 * time.Second
	MaxCodeTTL     = 24 * time.Hour
	// selectorTries bounds the draws for a free selector; with at most a
	// handful of open codes a collision is rare.
	selectorTries = 64
)

// Store is what the admin API needs of the gateway's store.
type Store interface {
	CreateCode(ctx context.Context, c store.Code) (store.Code, error)
	ListRequests(ctx context.Context, includeDecided bool, now time.Time) ([]store.Request, error)
	ApproveRequest(ctx context.Context, id string, now time.Time) (store.Request, error)
	RejectRequest(ctx context.Context, id string, now time.Time) (store.Request, error)
	ListDevices(ctx context.Context) ([]store.Device, error)
	ListNodes(ctx context.Context) ([]store.Node, error)
	RevokeDevice(ctx context.Context, id identity.DeviceID, now time.Time) (store.Device, error)
	RemoveDevice(ctx context.Context, id identity.DeviceID, now time.Time) error
	ListInvocations(ctx context.Context, f store.InvocationFilter) ([]store.Invocation, error)
	GetInvocation(ctx context.Context, requestID string) (store.Invocation, error)
}

// Sessions is the live side: who is online, and cutting a device off.
type Sessions interface {
	Online(id identity.DeviceID) bool
	Disconnect(id identity.DeviceID, reason string) int
}

// Nodes is the node runtime: what nodes share, and calls on them.
type Nodes interface {
	Node(id identity.DeviceID) dispatch.Node
	Invoke(ctx context.Context, req dispatch.Request) (*dispatch.Response, error)
	// Forget drops what is known of a removed device.
	Forget(id identity.DeviceID)
	// Await waits for a queued call to end, or ctx (dispatch.Dispatcher).
	Await(ctx context.Context, requestID string) (store.Invocation, error)
	// Cancel cancels a queued call that has not ended.
	Cancel(ctx context.Context, requestID string) (store.InvocationState, store.Invocation, error)
}

// Config wires the admin API to the gateway.
type Config struct {
	Store    Store
	Sessions Sessions
	// Nodes runs invocations and describes nodes; nil refuses both.
	Nodes Nodes
	// Events feeds DescribeNode's recent events and WatchEvents; nil
	// means none.
	Events *events.Hub
	// Decided is told about every approval or rejection, so a device waiting
	// on its pairing stream hears at once.
	Decided     func(requestID string)
	CAPin       identity.Fingerprint
	Addresses   func() []string
	GatewayName string
	Rand        io.Reader
	Now         func() time.Time
	Logger      *slog.Logger

	// Holders, if set, maps the nodes online on any gateway of the
	// database to the ID of the gateway that holds each (gateway/cluster);
	// nil: this gateway is alone.
	Holders func(ctx context.Context) (map[identity.DeviceID]string, error)
}

// Service is the admin API. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
}

// New checks the configuration.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Sessions == nil || cfg.Addresses == nil || cfg.Rand == nil {
		return nil, errors.New("admin service: store, sessions, addresses and random source are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Decided == nil {
		cfg.Decided = func(string) {}
	}
	return &Service{cfg: cfg}, nil
}

// CodeOptions describe a pairing code to mint.
type CodeOptions struct {
	// TTL is how long the code lives: 0 means DefaultCodeTTL, otherwise
	// between MinCodeTTL and MaxCodeTTL.
	TTL time.Duration
	// AutoApprove approves the code's pairing request without asking.
	AutoApprove bool
	// Name is shown in the pairing request list; at most
	// pairing.MaxNameLength bytes.
	Name string
}

// Code is a minted pairing code, in its two forms: the PIN (typed with the
// gateway's address) and the link (which the QR code holds).
type Code struct {
	// PIN is shown as 123-456-789.
	PIN  string
	Link string
	// Selector is the PIN's two public digits, naming the code.
	Selector    string
	Name        string
	AutoApprove bool
	ExpiresAt   time.Time
}

// QRPayload is the text a QR code of this code holds: the link.
func (c Code) QRPayload() string { return c.Link }

// MintPairingCode opens a code and returns its PIN and link.
func (s *Service) MintPairingCode(ctx context.Context, opts CodeOptions) (Code, error) {
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultCodeTTL
	}
	if ttl < MinCodeTTL || ttl > MaxCodeTTL {
		return Code{}, invalid("ttl", "a code must live between %s and %s, not %s", MinCodeTTL, MaxCodeTTL, ttl)
	}
	if len(opts.Name) > pairing.MaxNameLength {
		return Code{}, invalid("name", "the code's name is longer than %d bytes", pairing.MaxNameLength)
	}
	now := s.cfg.Now()
	for range selectorTries {
		sel, err := pairing.RandomSelector(s.cfg.Rand)
		if err != nil {
			return Code{}, &InternalError{Msg: "drawing a code failed", Err: err}
		}
		code, err := pairing.NewCode(s.cfg.Rand, sel)
		if err != nil {
			return Code{}, &InternalError{Msg: "drawing a code failed", Err: err}
		}
		rec, err := s.cfg.Store.CreateCode(ctx, store.Code{
			Selector:    sel,
			Name:        opts.Name,
			PINSecret:   code.PINSecret,
			LinkSecret:  code.LinkSecret,
			AutoApprove: opts.AutoApprove,
			CreatedAt:   now,
			ExpiresAt:   now.Add(ttl),
		})
		if errors.Is(err, store.ErrSelectorInUse) {
			continue
		}
		if err != nil {
			s.cfg.Logger.Error("storing pairing code", "err", err)
			return Code{}, &InternalError{Msg: "the gateway could not store the code", Err: err}
		}
		addrs := s.cfg.Addresses()
		link, err := pairing.NewLink(code, addrs, s.cfg.CAPin, rec.ExpiresAt, s.cfg.GatewayName).Encode()
		// The first addresses are this gateway's, the rest its peers': a
		// link too long with all of them names the first that fit.
		for err != nil && len(addrs) > 1 {
			addrs = addrs[:len(addrs)-1]
			link, err = pairing.NewLink(code, addrs, s.cfg.CAPin, rec.ExpiresAt, s.cfg.GatewayName).Encode()
		}
		if err != nil {
			return Code{}, refuse(ErrCannotLink, err, "building the pairing link: %v", err)
		}
		s.cfg.Logger.Info("pairing code minted", "code", sel, "expires_at", rec.ExpiresAt, "auto_approve", opts.AutoApprove)
		return Code{
			PIN:         code.PIN().Display(),
			Link:        link,
			Selector:    sel,
			Name:        opts.Name,
			AutoApprove: opts.AutoApprove,
			ExpiresAt:   rec.ExpiresAt,
		}, nil
	}
	return Code{}, refuse(ErrTooManyCodes, nil, "too many open pairing codes; wait for some to be used or expire")
}

// RequestState is where a pairing request stands.
type RequestState int

// The states of a pairing request. A request whose certificate was issued
// reads as approved.
const (
	RequestUnknown RequestState = iota
	RequestPending
	RequestApproved
	RequestRejected
	RequestExpired
)

func (s RequestState) String() string {
	switch s {
	case RequestPending:
		return "pending"
	case RequestApproved:
		return "approved"
	case RequestRejected:
		return "rejected"
	case RequestExpired:
		return "expired"
	}
	return "unknown"
}

// PairingRequest is a device's request to pair, as the person deciding it
// sees it: VerificationCode is what the device shows.
type PairingRequest struct {
	ID               string
	DeviceID         identity.DeviceID
	Name             string
	Platform         string
	VerificationCode string
	State            RequestState
	CreatedAt        time.Time
	ExpiresAt        time.Time
	// CodeName is the name of the code the device paired with.
	CodeName string
}

// PairingRequests lists the pending requests, oldest first, or every
// request with all.
func (s *Service) PairingRequests(ctx context.Context, all bool) ([]PairingRequest, error) {
	list, err := s.cfg.Store.ListRequests(ctx, all, s.cfg.Now())
	if err != nil {
		return nil, s.internal("listing pairing requests", err)
	}
	out := make([]PairingRequest, 0, len(list))
	for _, r := range list {
		out = append(out, request(r))
	}
	return out, nil
}

// ApprovePairingRequest approves a pending request; the device waiting on
// it gets its certificate at once.
func (s *Service) ApprovePairingRequest(ctx context.Context, id string) (PairingRequest, error) {
	return s.decide(ctx, id, s.cfg.Store.ApproveRequest, "approved")
}

// RejectPairingRequest rejects a pending request; the device waiting on it
// is told at once.
func (s *Service) RejectPairingRequest(ctx context.Context, id string) (PairingRequest, error) {
	return s.decide(ctx, id, s.cfg.Store.RejectRequest, "rejected")
}

func (s *Service) decide(ctx context.Context, id string, change func(context.Context, string, time.Time) (store.Request, error), verb string) (PairingRequest, error) {
	r, err := change(ctx, id, s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return PairingRequest{}, &NotFoundError{What: "pairing request", ID: id}
	case errors.Is(err, store.ErrRequestExpired):
		s.cfg.Decided(id)
		return PairingRequest{}, &DecisionError{RequestID: id, Decision: verb, Err: ErrRequestExpired}
	case errors.Is(err, store.ErrIllegalTransition):
		return PairingRequest{}, &DecisionError{RequestID: id, Decision: verb, Err: ErrAlreadyDecided}
	case errors.Is(err, store.ErrDeviceRevoked):
		// The device was revoked while it waited: turn it away now rather
		// than leave it waiting for the request to expire.
		if _, rerr := s.cfg.Store.RejectRequest(ctx, id, s.cfg.Now()); rerr != nil {
			s.cfg.Logger.Error("rejecting the request of a revoked device", "request_id", id, "err", rerr)
		}
		s.cfg.Decided(id)
		return PairingRequest{}, &DecisionError{RequestID: id, Decision: verb, Err: ErrRevoked}
	case err != nil:
		return PairingRequest{}, s.internal("deciding pairing request", err)
	}
	s.cfg.Decided(id)
	s.cfg.Logger.Info("pairing request "+verb, "request_id", id, "device", r.DeviceID)
	return request(r), nil
}

// Node is a node the gateway knows (one that connected since pairing),
// with its presence.
type Node struct {
	DeviceID identity.DeviceID
	Name     string
	Platform string
	Version  string
	Online   bool
	LastSeen time.Time
	// Transport is the carrier it is connected over ("quic" or "grpc"),
	// or "" (offline, or connected to another gateway of the database).
	Transport string
	// Gateway is the ID of the gateway of the database that holds its
	// session, or "" (offline, or this gateway is alone).
	Gateway string
}

// Nodes lists the registered nodes by name, with their presence.
func (s *Service) Nodes(ctx context.Context) ([]Node, error) {
	nodes, err := s.cfg.Store.ListNodes(ctx)
	if err != nil {
		return nil, s.internal("listing nodes", err)
	}
	slices.SortFunc(nodes, func(a, b store.Node) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), bytes.Compare(a.DeviceID[:], b.DeviceID[:]))
	})
	holders := s.holders(ctx)
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, s.node(n, holders))
	}
	return out, nil
}

// Device is a paired device, revoked or not.
type Device struct {
	ID       identity.DeviceID
	Name     string
	Platform string
	PairedAt time.Time
	// RevokedAt is when the device was revoked, or zero.
	RevokedAt           time.Time
	CertificateNotAfter time.Time
}

// Revoked says whether the device is refused.
func (d Device) Revoked() bool { return !d.RevokedAt.IsZero() }

// Devices lists paired devices in pairing order, revoked ones included.
func (s *Service) Devices(ctx context.Context) ([]Device, error) {
	devices, err := s.cfg.Store.ListDevices(ctx)
	if err != nil {
		return nil, s.internal("listing devices", err)
	}
	out := make([]Device, 0, len(devices))
	for _, d := range devices {
		out = append(out, device(d))
	}
	return out, nil
}

// RevokeDevice revokes a device and closes its live sessions; revoking
// again is harmless.
func (s *Service) RevokeDevice(ctx context.Context, deviceID string) (Device, error) {
	id, err := parseDeviceID(deviceID)
	if err != nil {
		return Device{}, err
	}
	d, err := s.cfg.Store.RevokeDevice(ctx, id, s.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, &NotFoundError{What: "device", ID: id.String()}
	}
	if err != nil {
		return Device{}, s.internal("revoking device", err)
	}
	n := s.cfg.Sessions.Disconnect(id, "revoked")
	s.cfg.Logger.Info("device revoked", "device", id, "sessions_closed", n)
	return device(d), nil
}

// RemoveDevice forgets a device; it stays refused.
func (s *Service) RemoveDevice(ctx context.Context, deviceID string) error {
	id, err := parseDeviceID(deviceID)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.RemoveDevice(ctx, id, s.cfg.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &NotFoundError{What: "device", ID: id.String()}
		}
		return s.internal("removing device", err)
	}
	n := s.cfg.Sessions.Disconnect(id, "removed")
	if s.cfg.Nodes != nil {
		s.cfg.Nodes.Forget(id)
	}
	s.cfg.Logger.Info("device removed", "device", id, "sessions_closed", n)
	return nil
}

func (s *Service) internal(what string, err error) error {
	s.cfg.Logger.Error(what, "err", err)
	return &InternalError{Msg: what + " failed; see the gateway's log", Err: err}
}

func parseDeviceID(s string) (identity.DeviceID, error) {
	id, err := identity.ParseDeviceID(s)
	if err != nil {
		return id, &InvalidArgumentError{Argument: "device_id", Err: err}
	}
	return id, nil
}

func request(r store.Request) PairingRequest {
	return PairingRequest{
		ID:               r.ID,
		DeviceID:         r.DeviceID,
		Name:             r.Name,
		Platform:         r.Platform,
		VerificationCode: r.VerificationCode,
		State:            requestState(r.State),
		CreatedAt:        r.CreatedAt,
		ExpiresAt:        r.ExpiresAt,
		CodeName:         r.CodeName,
	}
}

func requestState(s store.RequestState) RequestState {
	switch s {
	case store.RequestPending:
		return RequestPending
	case store.RequestApproved, store.RequestIssued:
		return RequestApproved
	case store.RequestRejected:
		return RequestRejected
	case store.RequestExpired:
		return RequestExpired
	}
	return RequestUnknown
}

func device(d store.Device) Device {
	return Device{
		ID:                  d.ID,
		Name:                d.Name,
		Platform:            d.Platform,
		PairedAt:            d.PairedAt,
		RevokedAt:           d.RevokedAt,
		CertificateNotAfter: d.CertificateNotAfter,
	}
}
