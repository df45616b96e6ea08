// Package adminrpc serves the gateway's admin API (gateway/admin) as the
// gRPC service of proto/admin/v1, the protocol of the admin socket that the
// palyra command line speaks. Each call decodes its request, calls the Go
// API and encodes the result; the API's errors become gRPC statuses in one
// place (Status).
package adminrpc

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/admin"
	"github.com/palyra/palyra-go/identity"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Server implements adminv1.AdminServer over an admin.Service.
type Server struct {
	adminv1.UnimplementedAdminServer
	api *admin.Service
}

// New serves api.
func New(api *admin.Service) *Server { return &Server{api: api} }

// Status turns an error of the admin API into the gRPC status the admin
// socket answers with: the code says what kind of refusal it is, the
// message is the error's text.
func Status(err error) error {
	var internal *admin.InternalError
	code := codes.Unknown
	switch {
	case err == nil:
		return nil
	case errors.As(err, &internal):
		// Before the rest: its cause may be anything.
		code = codes.Internal
	case errors.Is(err, admin.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, admin.ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, admin.ErrAlreadyDecided), errors.Is(err, admin.ErrRequestExpired),
		errors.Is(err, admin.ErrRevoked), errors.Is(err, admin.ErrCannotLink), errors.Is(err, admin.ErrCallEnded):
		code = codes.FailedPrecondition
	case errors.Is(err, admin.ErrTooManyCodes):
		code = codes.ResourceExhausted
	case errors.Is(err, admin.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(code, err.Error())
}

// MintNodePairingCode opens a code and returns its PIN and link.
func (s *Server) MintNodePairingCode(ctx context.Context, req *adminv1.MintNodePairingCodeRequest) (*adminv1.MintNodePairingCodeResponse, error) {
	code, err := s.api.MintPairingCode(ctx, admin.CodeOptions{
		TTL:         time.Duration(req.GetTtlMs()) * time.Millisecond,
		AutoApprove: req.GetAutoApprove(),
		Name:        req.GetName(),
	})
	if err != nil {
		return nil, Status(err)
	}
	return &adminv1.MintNodePairingCodeResponse{
		Pin:             code.PIN,
		Link:            code.Link,
		ExpiresAtUnixMs: code.ExpiresAt.UnixMilli(),
		Selector:        code.Selector,
	}, nil
}

// ListPairingRequests lists pending requests, or all with req.All.
func (s *Server) ListPairingRequests(ctx context.Context, req *adminv1.ListPairingRequestsRequest) (*adminv1.ListPairingRequestsResponse, error) {
	list, err := s.api.PairingRequests(ctx, req.GetAll())
	if err != nil {
		return nil, Status(err)
	}
	out := &adminv1.ListPairingRequestsResponse{}
	for _, r := range list {
		out.Requests = append(out.Requests, requestProto(r))
	}
	return out, nil
}

// ApprovePairingRequest approves a pending request.
func (s *Server) ApprovePairingRequest(ctx context.Context, req *adminv1.DecidePairingRequest) (*adminv1.PairingRequest, error) {
	r, err := s.api.ApprovePairingRequest(ctx, req.GetRequestId())
	if err != nil {
		return nil, Status(err)
	}
	return requestProto(r), nil
}

// RejectPairingRequest rejects a pending request.
func (s *Server) RejectPairingRequest(ctx context.Context, req *adminv1.DecidePairingRequest) (*adminv1.PairingRequest, error) {
	r, err := s.api.RejectPairingRequest(ctx, req.GetRequestId())
	if err != nil {
		return nil, Status(err)
	}
	return requestProto(r), nil
}

// ListNodes lists the registered nodes with their presence.
func (s *Server) ListNodes(ctx context.Context, _ *adminv1.ListNodesRequest) (*adminv1.ListNodesResponse, error) {
	nodes, err := s.api.Nodes(ctx)
	if err != nil {
		return nil, Status(err)
	}
	// One allocation for the messages, not one each: a listing of 10,000
	// nodes is what an operator's dashboard asks for through a storm.
	msgs := make([]adminv1.Node, len(nodes))
	out := &adminv1.ListNodesResponse{Nodes: make([]*adminv1.Node, len(nodes))}
	for i, n := range nodes {
		setNodeProto(&msgs[i], n)
		out.Nodes[i] = &msgs[i]
	}
	return out, nil
}

// ListDevices lists paired devices, revoked ones included.
func (s *Server) ListDevices(ctx context.Context, _ *adminv1.ListDevicesRequest) (*adminv1.ListDevicesResponse, error) {
	devices, err := s.api.Devices(ctx)
	if err != nil {
		return nil, Status(err)
	}
	out := &adminv1.ListDevicesResponse{}
	for _, d := range devices {
		out.Devices = append(out.Devices, deviceProto(d))
	}
	return out, nil
}

// RevokeDevice revokes a device and closes its live sessions.
func (s *Server) RevokeDevice(ctx context.Context, req *adminv1.DeviceRequest) (*adminv1.Device, error) {
	d, err := s.api.RevokeDevice(ctx, req.GetDeviceId())
	if err != nil {
		return nil, Status(err)
	}
	return deviceProto(d), nil
}

// RemoveDevice forgets a device; it stays refused.
func (s *Server) RemoveDevice(ctx context.Context, req *adminv1.DeviceRequest) (*adminv1.RemoveDeviceResponse, error) {
	if err := s.api.RemoveDevice(ctx, req.GetDeviceId()); err != nil {
		return nil, Status(err)
	}
	return &adminv1.RemoveDeviceResponse{}, nil
}

// DescribeNode returns a node with its capabilities and recent events.
func (s *Server) DescribeNode(ctx context.Context, req *adminv1.DeviceRequest) (*adminv1.NodeDetail, error) {
	d, err := s.api.DescribeNode(ctx, req.GetDeviceId())
	if err != nil {
		return nil, Status(err)
	}
	out := &adminv1.NodeDetail{Node: nodeProto(d.Node)}
	for _, c := range d.Capabilities {
		out.Capabilities = append(out.Capabilities, &nodev1.Capability{
			Name:        c.Name,
			Description: c.Description,
			ArgsSchema:  c.ArgsSchema,
			Privacy:     nodev1.Capability_Privacy(c.Privacy),
			Enabled:     c.Enabled,
			Consent:     nodev1.Capability_Consent(c.Consent),
		})
	}
	for _, e := range d.RecentEvents {
		out.RecentEvents = append(out.RecentEvents, eventProto(e))
	}
	return out, nil
}

// Invoke runs a capability on a node and waits for its result.
func (s *Server) Invoke(ctx context.Context, req *adminv1.InvokeRequest) (*adminv1.InvokeResponse, error) {
	r, err := s.api.Invoke(ctx, admin.Invocation{
		DeviceID:   req.GetDeviceId(),
		Capability: req.GetCapability(),
		Args:       req.GetArgsJson(),
		Timeout:    time.Duration(req.GetTimeoutMs()) * time.Millisecond,
		QueueTTL:   time.Duration(req.GetQueueTtlMs()) * time.Millisecond,
	})
	if err != nil {
		return nil, Status(err)
	}
	return invokeResponse(r), nil
}

func invokeResponse(r admin.InvokeResult) *adminv1.InvokeResponse {
	return &adminv1.InvokeResponse{
		RequestId:    r.RequestID,
		Ok:           r.OK,
		OutputJson:   r.Output,
		ErrorCode:    r.ErrorCode,
		ErrorMessage: r.ErrorMessage,
		Queued:       r.Queued,
	}
}

// ListCalls lists queued calls, newest first.
func (s *Server) ListCalls(ctx context.Context, req *adminv1.ListCallsRequest) (*adminv1.ListCallsResponse, error) {
	f := admin.CallFilter{DeviceID: req.GetDeviceId(), Limit: int(req.GetLimit())}
	for _, st := range req.GetStates() {
		cs, ok := callStates[st]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "no call state %v", st)
		}
		f.States = append(f.States, cs)
	}
	calls, err := s.api.Calls(ctx, f)
	if err != nil {
		return nil, Status(err)
	}
	out := &adminv1.ListCallsResponse{}
	for _, c := range calls {
		out.Calls = append(out.Calls, callProto(c))
	}
	return out, nil
}

// GetCall returns a queued call, waiting for it if asked.
func (s *Server) GetCall(ctx context.Context, req *adminv1.GetCallRequest) (*adminv1.Call, error) {
	c, err := s.api.GetCall(ctx, req.GetRequestId(), time.Duration(req.GetWaitMs())*time.Millisecond)
	if err != nil {
		return nil, Status(err)
	}
	return callProto(c), nil
}

// CancelCall cancels a queued call that has not ended.
func (s *Server) CancelCall(ctx context.Context, req *adminv1.CancelCallRequest) (*adminv1.CancelCallResponse, error) {
	was, c, err := s.api.CancelCall(ctx, req.GetRequestId())
	if err != nil {
		return nil, Status(err)
	}
	return &adminv1.CancelCallResponse{Call: callProto(c), PreviousState: callStateProto(was)}, nil
}

// callStates maps the protocol's call states to the API's.
var callStates = map[adminv1.Call_State]admin.CallState{
	adminv1.Call_STATE_QUEUED:    admin.CallQueued,
	adminv1.Call_STATE_DELIVERED: admin.CallDelivered,
	adminv1.Call_STATE_DONE:      admin.CallDone,
	adminv1.Call_STATE_FAILED:    admin.CallFailed,
	adminv1.Call_STATE_EXPIRED:   admin.CallExpired,
	adminv1.Call_STATE_CANCELLED: admin.CallCancelled,
}

func callStateProto(s admin.CallState) adminv1.Call_State {
	for p, cs := range callStates {
		if cs == s {
			return p
		}
	}
	return adminv1.Call_STATE_UNSPECIFIED
}

func callProto(c admin.Call) *adminv1.Call {
	out := &adminv1.Call{
		RequestId:       c.RequestID,
		DeviceId:        c.DeviceID.String(),
		Capability:      c.Capability,
		ArgsJson:        c.Args,
		Caller:          c.Caller,
		State:           callStateProto(c.State),
		Attempts:        int32(c.Attempts),
		CreatedAtUnixMs: c.CreatedAt.UnixMilli(),
		ExpiresAtUnixMs: c.ExpiresAt.UnixMilli(),
	}
	if !c.FinishedAt.IsZero() {
		out.FinishedAtUnixMs = c.FinishedAt.UnixMilli()
	}
	if c.Result != nil {
		out.Result = invokeResponse(*c.Result)
	}
	return out
}

// WatchEvents streams node events until the client goes away.
func (s *Server) WatchEvents(req *adminv1.WatchEventsRequest, stream adminv1.Admin_WatchEventsServer) error {
	watch, err := s.api.WatchEvents(stream.Context(), req.GetDeviceId())
	if err != nil {
		return Status(err)
	}
	// Headers tell the client it is subscribed: nothing published from
	// now on is missed.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for e := range watch {
		if err := stream.Send(eventProto(e)); err != nil {
			return err
		}
	}
	return nil
}

func requestProto(r admin.PairingRequest) *adminv1.PairingRequest {
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

func requestState(s admin.RequestState) adminv1.PairingRequest_State {
	switch s {
	case admin.RequestPending:
		return adminv1.PairingRequest_STATE_PENDING
	case admin.RequestApproved:
		return adminv1.PairingRequest_STATE_APPROVED
	case admin.RequestRejected:
		return adminv1.PairingRequest_STATE_REJECTED
	case admin.RequestExpired:
		return adminv1.PairingRequest_STATE_EXPIRED
	}
	return adminv1.PairingRequest_STATE_UNSPECIFIED
}

func nodeProto(n admin.Node) *adminv1.Node {
	m := &adminv1.Node{}
	setNodeProto(m, n)
	return m
}

// setNodeProto fills m, a new message, with n.
func setNodeProto(m *adminv1.Node, n admin.Node) {
	m.DeviceId = n.DeviceID.String()
	m.Name = n.Name
	m.Platform = n.Platform
	m.Version = n.Version
	m.Online = n.Online
	m.LastSeenUnixMs = n.LastSeen.UnixMilli()
	m.Transport = n.Transport
	m.Gateway = n.Gateway
}

func deviceProto(d admin.Device) *adminv1.Device {
	return &adminv1.Device{
		DeviceId:                  d.ID.String(),
		Name:                      d.Name,
		Platform:                  d.Platform,
		Revoked:                   d.Revoked(),
		PairedAtUnixMs:            d.PairedAt.UnixMilli(),
		CertificateNotAfterUnixMs: d.CertificateNotAfter.UnixMilli(),
	}
}

func eventProto(e admin.Event) *adminv1.Event {
	ev := &adminv1.Event{
		TimeUnixMs: e.Time.UnixMilli(),
		Kind:       e.Kind,
		Capability: e.Capability,
		RequestId:  e.RequestID,
		Message:    e.Message,
	}
	if e.DeviceID != (identity.DeviceID{}) {
		ev.DeviceId = e.DeviceID.String()
	}
	return ev
}
