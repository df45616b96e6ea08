// Package grpccarrier is the gateway's end of the node protocol over gRPC on
// TCP/TLS, the carrier for networks that block UDP. It implements the
// nodev1.Node service: RegisterNode records the node's registration and
// answers Welcome; StreamEvents is then the device's session (lease
// renewals, capability changes, events and call progress from the node;
// LeaseGranted, Invoke and Cancel from the gateway); results come back
// through SubmitCapabilityResult. Its sessions go in the gateway's
// carrier.Registry, the same table as the QUIC carrier's (SessionInfo.Transport
// "grpc"), and its Invoke keeps quiccarrier.Server.Invoke's contract.
//
// The service shares its TCP listener and grpc.Server with the Pairing
// service, whose TLS config only requests a client certificate
// (tls.RequestClientCert: a node that is pairing has none). So every RPC
// authenticates itself: the device ID comes from the peer's certificate
// through Config.Authenticate, never from a message, and a Result that names
// another device is refused (the cert-bound device). A Result that comes
// with the certificate its call's live session authenticated with is that
// device's without checking it again (sessionDevice). A session ends at once
// when the device is disconnected (revocation), when its lease lapses, when
// a newer session of the same device, on either carrier, replaces it, or
// when the gateway shuts down; each end (carrier.EndKind) has its own status
// code, which node/grpccarrier maps back to its errors:
//
//	PermissionDenied    "device revoked" (carrier.Registry.Disconnect adds its reason)
//	Aborted             "replaced by a newer session"
//	DeadlineExceeded    "lease expired"
//	Unavailable         "gateway shutting down" (or "sending failed"), or with a
//	                    RetryInfo detail "gateway busy; retry in N s": the store
//	                    failed while checking or registering the node
//	InvalidArgument     the node broke the protocol
//	ResourceExhausted   "the node is not reading its stream"
//	Unauthenticated     no or a bad device certificate
//	FailedPrecondition  registration refused, or StreamEvents before RegisterNode
//
// The gateway's grpc.Server must be built with
// grpc.MaxRecvMsgSize(wire.MaxFrameSize) (package internal/wire), so a node's
// messages are held to the QUIC carrier's frame limit, and with
// grpc.KeepaliveEnforcementPolicy(KeepaliveEnforcement), so the nodes'
// HTTP/2 pings (every wire.GRPCPingInterval when idle) are allowed.
//
// It owns the gRPC wire handling only; it must not import the gateway's
// store, the QUIC carrier, the node, or anything from the GUI.
package grpccarrier

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/palyra/palyra-go/internal/retryinfo"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Status messages a session can end with; node/grpccarrier matches
// shutdownMessage to tell a shutdown from a network failure.
const (
	revokedMessage  = carrier.RevokedReason
	leaseMessage    = "lease expired"
	shutdownMessage = carrier.ShutdownMessage
	noCertMessage   = "a device certificate is required"
)

const (
	// outQueue is how many calls and cancels may wait to be sent on one
	// session; more wait for room.
	outQueue = 64
	// ctrlQueue is how many lease grants may wait to be sent on one
	// session; more end it (the node is not reading).
	ctrlQueue = 8
	// progressQueue is how many Progress reports may wait for one call's
	// caller; more are dropped (progress is advisory).
	progressQueue = 32
	// cancelSendTimeout bounds queueing a Cancel for a node that is not
	// reading.
	cancelSendTimeout = time.Second
)

// KeepaliveEnforcement lets nodes ping as often as node/grpccarrier does
// (wire.GRPCPingInterval), with a margin; grpc's default (one ping per 5
// minutes) would close their connections for "too_many_pings".
var KeepaliveEnforcement = keepalive.EnforcementPolicy{
	MinTime:             wire.GRPCPingInterval / 2,
	PermitWithoutStream: true,
}

// Config configures a Server.
type Config struct {
	// Common holds the Registry (RenewCertificate of its Runtime is not
	// used: certificates renew over QUIC or by challenge), the lease (how
	// long a session lives without a frame from the node, and how long a
	// registration waits for its StreamEvents) and the name sent in
	// Welcome.
	carrier.Common
}

// Server serves the Node service.
type Server struct {
	cfg Config
	reg *carrier.Registry
	rt  carrier.Runtime
	// leases ends the sessions whose node went silent.
	leases *carrier.Leases
	log    *slog.Logger

	// mu guards the fields below it and every session's gone.
	mu sync.Mutex
	// pending holds each device's latest registration until a StreamEvents
	// takes it.
	pending map[identity.DeviceID]*registration
	// waiters holds the calls waiting for a result.
	waiters map[waitKey]*waiter
	// closing is set by Close, after the Registry's Shutdown.
	closing bool

	// handlers counts running StreamEvents handlers, for Close.
	handlers sync.WaitGroup
}

// registration is a RegisterNode waiting for its StreamEvents.
type registration struct {
	info carrier.SessionInfo
	at   time.Time
	// expire drops the registration once it is a lease old, if no
	// StreamEvents took it: each registration has its own timer, so none
	// sweeps the others (a storm registers thousands at once).
	expire *time.Timer
}

// keepPending holds r as its device's registration, in place of an older
// one, until a StreamEvents takes it (takePending) or a lease passes.
func (s *Server) keepPending(r *registration) {
	id := r.info.DeviceID
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.pending[id]; old != nil {
		old.expire.Stop()
	}
	s.pending[id] = r
	r.expire = time.AfterFunc(s.cfg.LeaseTTL, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pending[id] == r {
			delete(s.pending, id)
		}
	})
}

// takePendingLocked removes and returns device id's registration; s.mu must be
// held.
func (s *Server) takePendingLocked(id identity.DeviceID) *registration {
	r := s.pending[id]
	if r != nil {
		r.expire.Stop()
		delete(s.pending, id)
	}
	return r
}

// dropPendingLocked drops every registration; s.mu must be held.
func (s *Server) dropPendingLocked() {
	for id := range s.pending {
		s.takePendingLocked(id)
	}
}

// NewServer checks cfg and returns a Server; Register serves it.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Check("grpccarrier"); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		reg:     cfg.Registry,
		rt:      cfg.Registry.Runtime(),
		leases:  carrier.NewLeases(cfg.LeaseTTL),
		log:     cfg.Logger.With("transport", wire.TransportGRPC),
		pending: make(map[identity.DeviceID]*registration),
		waiters: make(map[waitKey]*waiter),
	}
	// A revoked or removed device's registration goes with its sessions.
	cfg.Registry.OnDisconnect(func(id identity.DeviceID) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.takePendingLocked(id)
	})
	return s, nil
}

// Register registers the Node service on gs.
func (s *Server) Register(gs *grpc.Server) {
	nodev1.RegisterNodeServer(gs, &service{s: s})
}

// service is the generated interface's implementation; the RPCs stay off
// Server's own API.
type service struct {
	nodev1.UnimplementedNodeServer
	s *Server
}

func (v *service) RegisterNode(ctx context.Context, reg *nodev1.RegisterNode) (*nodev1.Welcome, error) {
	return v.s.registerNode(ctx, reg)
}

func (v *service) StreamEvents(stream grpc.BidiStreamingServer[nodev1.Frame, nodev1.Frame]) error {
	return v.s.streamEvents(stream)
}

func (v *service) SubmitCapabilityResult(ctx context.Context, res *nodev1.Result) (*nodev1.SubmitResultResponse, error) {
	return v.s.submitResult(ctx, res)
}

// Close ends every gRPC session with Unavailable "gateway shutting down"
// and refuses new ones, then waits for the StreamEvents handlers to return
// (so the runtime has heard NodeGone and grpc.Server.GracefulStop can
// finish). It must not be called from a Runtime callback.
func (s *Server) Close() {
	s.reg.Shutdown(wire.TransportGRPC)
	s.mu.Lock()
	s.closing = true
	s.dropPendingLocked()
	s.mu.Unlock()
	s.handlers.Wait()
}

// peerDevice is the authenticated device behind an RPC.
type peerDevice struct {
	id       identity.DeviceID
	rawCerts [][]byte
	notAfter time.Time
	remote   string
}

// authenticate finds the device behind ctx's RPC from its verified TLS
// state. Its errors are gRPC statuses.
func (s *Server) authenticate(ctx context.Context) (peerDevice, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return peerDevice{}, status.Error(codes.Unauthenticated, noCertMessage)
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return peerDevice{}, status.Error(codes.Unauthenticated, noCertMessage)
	}
	raw := make([][]byte, len(ti.State.PeerCertificates))
	for i, c := range ti.State.PeerCertificates {
		raw[i] = c.Raw
	}
	id, err := s.reg.Authenticate(raw)
	if err != nil {
		s.log.Info("node RPC refused", "remote", p.Addr.String(), "err", err)
		if !errors.Is(err, carrier.ErrBusy) { // a store failure, not a refused certificate
			s.reg.Refuse(p.Addr, err)
		}
		return peerDevice{}, authStatus(err)
	}
	return peerDevice{
		id:       id,
		rawCerts: raw,
		notAfter: ti.State.PeerCertificates[0].NotAfter,
		remote:   p.Addr.String(),
	}, nil
}

// authStatus turns an Authenticate error into the status the node sees.
func authStatus(err error) error {
	var busy *carrier.BusyError
	switch {
	case errors.Is(err, identity.ErrRevoked):
		return status.Error(codes.PermissionDenied, revokedMessage)
	case errors.As(err, &busy):
		return busyStatus(busy)
	}
	return status.Errorf(codes.Unauthenticated, "device certificate refused: %v", err)
}

// busyStatus is what a node hears when the store failed while serving it:
// Unavailable with the wait in a RetryInfo detail (the store's error stays
// in the gateway's log).
func busyStatus(b *carrier.BusyError) error {
	return retryinfo.Error(codes.Unavailable, fmt.Sprintf("gateway busy; retry in %d s", int(b.RetryAfter/time.Second)), b.RetryAfter)
}

// registerNode records a registration for the device's next StreamEvents.
func (s *Server) registerNode(ctx context.Context, reg *nodev1.RegisterNode) (*nodev1.Welcome, error) {
	release, err := s.reg.Admit()
	if err != nil {
		var busy *carrier.BusyError
		errors.As(err, &busy)
		return nil, busyStatus(busy)
	}
	defer release()
	pd, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	now := s.reg.Now()
	info := carrier.SessionInfo{
		DeviceID:     pd.id,
		Name:         reg.GetName(),
		Platform:     reg.GetPlatform(),
		Version:      reg.GetVersion(),
		Capabilities: reg.GetCapabilities(),
		RemoteAddr:   pd.remote,
		ConnectedAt:  now,
		CertNotAfter: pd.notAfter,
		Transport:    wire.TransportGRPC,
	}
	err = s.reg.Register(ctx, info, func() { s.keepPending(&registration{info: info, at: now}) })
	switch {
	case errors.Is(err, carrier.ErrShuttingDown):
		return nil, status.Error(codes.Unavailable, shutdownMessage)
	case err != nil:
		s.log.Info("node registration refused", "device", pd.id, "err", err)
		var busy *carrier.BusyError
		switch {
		case errors.Is(err, identity.ErrRevoked):
			return nil, status.Error(codes.PermissionDenied, revokedMessage)
		case errors.As(err, &busy):
			return nil, busyStatus(busy)
		}
		return nil, status.Error(codes.FailedPrecondition, "registration refused")
	}
	s.log.Info("node registered", "device", pd.id, "name", info.Name, "platform", info.Platform, "remote", pd.remote)
	return s.cfg.Welcome(pd.id, now, pd.notAfter), nil
}

// submitResult hands a result to the call waiting for it from the
// certificate's device.
func (s *Server) submitResult(ctx context.Context, res *nodev1.Result) (*nodev1.SubmitResultResponse, error) {
	device, ok := s.sessionDevice(ctx, res.GetRequestId())
	if !ok {
		pd, err := s.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		device = pd.id
	}
	if named := res.GetDeviceId(); named != "" {
		if id, err := identity.ParseDeviceID(named); err != nil || id != device {
			s.log.Warn("result names another device", "device", device, "named", clip(named), "request_id", clip(res.GetRequestId()))
			return nil, status.Errorf(codes.PermissionDenied, "the result names device %s but the certificate is device %s", clip(named), device)
		}
	}
	key := waitKey{id: device, requestID: res.GetRequestId()}
	s.mu.Lock()
	w := s.waiters[key]
	if w != nil {
		delete(s.waiters, key)
		w.result <- res // room for one; the waiter was in the map only until now
	}
	s.mu.Unlock()
	if w == nil {
		s.log.Info("result nobody waits for", "device", device, "request_id", clip(res.GetRequestId()))
		return nil, status.Errorf(codes.NotFound, "no call %s is waiting for a result from this device", clip(res.GetRequestId()))
	}
	return &nodev1.SubmitResultResponse{}, nil
}

// sessionDevice is the device a result comes from, when the RPC carries the
// very certificate that authenticated the live session the call was sent
// on: its StreamEvents checked that certificate (chain, validity, not
// revoked), TLS 1.3 proved the peer holds its key, and a revocation ends
// the session before anything else (carrier.Registry.Disconnect). Then the
// result needs no second check of the chain and no read of the store,
// which would be most of the cost of a call on this carrier. Otherwise ok
// is false and the RPC is authenticated in full.
func (s *Server) sessionDevice(ctx context.Context, requestID string) (id identity.DeviceID, ok bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return id, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) != 1 {
		return id, false
	}
	leaf := ti.State.PeerCertificates[0]
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return id, false
	}
	id = identity.DeviceIDFromPublicKey(pub)
	s.mu.Lock()
	w := s.waiters[waitKey{id: id, requestID: requestID}]
	s.mu.Unlock()
	if w == nil || len(w.ss.RawCerts) != 1 || !bytes.Equal(w.ss.RawCerts[0], leaf.Raw) {
		return id, false
	}
	if now := s.reg.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return id, false
	}
	if _, ended := s.reg.Ended(w.ss.Session); ended {
		return id, false
	}
	return id, true
}

// clip shortens a string from the peer for logs and messages.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
