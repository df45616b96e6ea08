// Package admin serves the gateway's admin API (proto/admin/v1): minting
// pairing codes, deciding pairing requests, listing nodes and devices,
// revoking and removing devices. It is served on a local Unix socket whose
// mode (0600) is the access control; it holds no transport code itself.
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
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
}

// Service implements adminv1.AdminServer.
type Service struct {
	adminv1.UnimplementedAdminServer
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

// MintNodePairingCode opens a code and returns its PIN and link.
func (s *Service) MintNodePairingCode(ctx context.Context, req *adminv1.MintNodePairingCodeRequest) (*adminv1.MintNodePairingCodeResponse, error) {
	ttl := time.Duration(req.TtlMs) * time.Millisecond
	if ttl == 0 {
		ttl = DefaultCodeTTL
	}
	if ttl < MinCodeTTL || ttl > MaxCodeTTL {
		return nil, status.Errorf(codes.InvalidArgument, "a code must live between %s and %s, not %s", MinCodeTTL, MaxCodeTTL, ttl)
	}
	if len(req.Name) > pairing.MaxNameLength {
		return nil, status.Errorf(codes.InvalidArgument, "the code's name is longer than %d bytes", pairing.MaxNameLength)
	}
	now := s.cfg.Now()
	for range selectorTries {
		sel, err := pairing.RandomSelector(s.cfg.Rand)
		if err != nil {
			return nil, status.Error(codes.Internal, "drawing a code failed")
		}
		code, err := pairing.NewCode(s.cfg.Rand, sel)
		if err != nil {
			return nil, status.Error(codes.Internal, "drawing a code failed")
		}
		rec, err := s.cfg.Store.CreateCode(ctx, store.Code{
			Selector:    sel,
			Name:        req.Name,
			PINSecret:   code.PINSecret,
			LinkSecret:  code.LinkSecret,
			AutoApprove: req.AutoApprove,
			CreatedAt:   now,
			ExpiresAt:   now.Add(ttl),
		})
		if errors.Is(err, store.ErrSelectorInUse) {
			continue
		}
		if err != nil {
			s.cfg.Logger.Error("storing pairing code", "err", err)
			return nil, status.Error(codes.Internal, "the gateway could not store the code")
		}
		link, err := pairing.NewLink(code, s.cfg.Addresses(), s.cfg.CAPin, rec.ExpiresAt, s.cfg.GatewayName).Encode()
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "building the pairing link: %v", err)
		}
		s.cfg.Logger.Info("pairing code minted", "code", sel, "expires_at", rec.ExpiresAt, "auto_approve", req.AutoApprove)
		return &adminv1.MintNodePairingCodeResponse{
			Pin:             code.PIN().Display(),
			Link:            link,
			ExpiresAtUnixMs: rec.ExpiresAt.UnixMilli(),
			Selector:        sel,
		}, nil
	}
	return nil, status.Error(codes.ResourceExhausted, "too many open pairing codes; wait for some to be used or expire")
}

// ListPairingRequests lists pending requests, or all with req.All.
func (s *Service) ListPairingRequests(ctx context.Context, req *adminv1.ListPairingRequestsRequest) (*adminv1.ListPairingRequestsResponse, error) {
	list, err := s.cfg.Store.ListRequests(ctx, req.All, s.cfg.Now())
	if err != nil {
		return nil, s.internal("listing pairing requests", err)
	}
	out := &adminv1.ListPairingRequestsResponse{}
	for _, r := range list {
		out.Requests = append(out.Requests, requestProto(r))
	}
	return out, nil
}

// ApprovePairingRequest approves a pending request.
func (s *Service) ApprovePairingRequest(ctx context.Context, req *adminv1.DecidePairingRequest) (*adminv1.PairingRequest, error) {
	return s.decide(ctx, req.RequestId, s.cfg.Store.ApproveRequest, "approved")
}

// RejectPairingRequest rejects a pending request.
func (s *Service) RejectPairingRequest(ctx context.Context, req *adminv1.DecidePairingRequest) (*adminv1.PairingRequest, error) {
	return s.decide(ctx, req.RequestId, s.cfg.Store.RejectRequest, "rejected")
}

func (s *Service) decide(ctx context.Context, id string, change func(context.Context, string, time.Time) (store.Request, error), verb string) (*adminv1.PairingRequest, error) {
	r, err := change(ctx, id, s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "no pairing request %q", id)
	case errors.Is(err, store.ErrRequestExpired):
		s.cfg.Decided(id)
		return nil, status.Errorf(codes.FailedPrecondition, "pairing request %s expired before it was %s", id, verb)
	case errors.Is(err, store.ErrIllegalTransition):
		return nil, status.Errorf(codes.FailedPrecondition, "pairing request %s is no longer pending: it was decided already", id)
	case errors.Is(err, store.ErrDeviceRevoked):
		// The device was revoked while it waited: turn it away now rather
		// than leave it waiting for the request to expire.
		if _, rerr := s.cfg.Store.RejectRequest(ctx, id, s.cfg.Now()); rerr != nil {
			s.cfg.Logger.Error("rejecting the request of a revoked device", "request_id", id, "err", rerr)
		}
		s.cfg.Decided(id)
		return nil, status.Errorf(codes.FailedPrecondition, "the device of pairing request %s is revoked; the request was rejected", id)
	case err != nil:
		return nil, s.internal("deciding pairing request", err)
	}
	s.cfg.Decided(id)
	s.cfg.Logger.Info("pairing request "+verb, "request_id", id, "device", r.DeviceID)
	return requestProto(r), nil
}

// ListNodes lists the registered nodes with their presence.
func (s *Service) ListNodes(ctx context.Context, _ *adminv1.ListNodesRequest) (*adminv1.ListNodesResponse, error) {
	nodes, err := s.cfg.Store.ListNodes(ctx)
	if err != nil {
		return nil, s.internal("listing nodes", err)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	out := &adminv1.ListNodesResponse{}
	for _, n := range nodes {
		out.Nodes = append(out.Nodes, &adminv1.Node{
			DeviceId:       n.DeviceID.String(),
			Name:           n.Name,
			Platform:       n.Platform,
			Version:        n.Version,
			Online:         s.cfg.Sessions.Online(n.DeviceID),
			LastSeenUnixMs: n.LastSeen.UnixMilli(),
			Transport:      s.transport(n.DeviceID),
		})
	}
	return out, nil
}

// ListDevices lists paired devices, revoked ones included.
func (s *Service) ListDevices(ctx context.Context, _ *adminv1.ListDevicesRequest) (*adminv1.ListDevicesResponse, error) {
	devices, err := s.cfg.Store.ListDevices(ctx)
	if err != nil {
		return nil, s.internal("listing devices", err)
	}
	out := &adminv1.ListDevicesResponse{}
	for _, d := range devices {
		out.Devices = append(out.Devices, deviceProto(d))
	}
	return out, nil
}

// RevokeDevice revokes a device and closes its live sessions.
func (s *Service) RevokeDevice(ctx context.Context, req *adminv1.DeviceRequest) (*adminv1.Device, error) {
	id, err := identity.ParseDeviceID(req.DeviceId)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d, err := s.cfg.Store.RevokeDevice(ctx, id, s.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "no device %s", id)
	}
	if err != nil {
		return nil, s.internal("revoking device", err)
	}
	n := s.cfg.Sessions.Disconnect(id, "revoked")
	s.cfg.Logger.Info("device revoked", "device", id, "sessions_closed", n)
	return deviceProto(d), nil
}

// RemoveDevice forgets a device; it stays refused.
func (s *Service) RemoveDevice(ctx context.Context, req *adminv1.DeviceRequest) (*adminv1.RemoveDeviceResponse, error) {
	id, err := identity.ParseDeviceID(req.DeviceId)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.cfg.Store.RemoveDevice(ctx, id, s.cfg.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "no device %s", id)
		}
		return nil, s.internal("removing device", err)
	}
	n := s.cfg.Sessions.Disconnect(id, "removed")
	if s.cfg.Nodes != nil {
		s.cfg.Nodes.Forget(id)
	}
	s.cfg.Logger.Info("device removed", "device", id, "sessions_closed", n)
	return &adminv1.RemoveDeviceResponse{}, nil
}

func (s *Service) internal(what string, err error) error {
	s.cfg.Logger.Error(what, "err", err)
	return status.Error(codes.Internal, fmt.Sprintf("%s failed; see the gateway's log", what))
}

func requestProto(r store.Request) *adminv1.PairingRequest {
	return &adminv1.PairingRequest{
		RequestId:        r.ID,
		DeviceId:         r.DeviceID.String(),
		Name:             r.Name,
		Platform:         r.Platform,
		VerificationCode: r.VerificationCode,
		State:            requestState(r.State),
		CreatedAtUnixMs:  r.CreatedAt.UnixMilli(),
		CodeName:         r.CodeName,
	}
}

func requestState(s store.RequestState) adminv1.PairingRequest_State {
	switch s {
	case store.RequestPending:
		return adminv1.PairingRequest_STATE_PENDING
	case store.RequestApproved, store.RequestIssued:
		return adminv1.PairingRequest_STATE_APPROVED
	case store.RequestRejected:
		return adminv1.PairingRequest_STATE_REJECTED
	case store.RequestExpired:
		return adminv1.PairingRequest_STATE_EXPIRED
	}
	return adminv1.PairingRequest_STATE_UNSPECIFIED
}

func deviceProto(d store.Device) *adminv1.Device {
	return &adminv1.Device{
		DeviceId:                  d.ID.String(),
		Name:                      d.Name,
		Platform:                  d.Platform,
		Revoked:                   !d.RevokedAt.IsZero(),
		PairedAtUnixMs:            d.PairedAt.UnixMilli(),
		CertificateNotAfterUnixMs: d.CertificateNotAfter.UnixMilli(),
	}
}
