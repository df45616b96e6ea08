package admin

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/identity"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// transport names the carrier the node is connected over, or "".
func (s *Service) transport(id identity.DeviceID) string {
	if s.cfg.Nodes == nil {
		return ""
	}
	return s.cfg.Nodes.Node(id).Transport
}

// DescribeNode returns a node with its capabilities and recent events.
func (s *Service) DescribeNode(ctx context.Context, req *adminv1.DeviceRequest) (*adminv1.NodeDetail, error) {
	id, err := identity.ParseDeviceID(req.GetDeviceId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	nodes, err := s.cfg.Store.ListNodes(ctx)
	if err != nil {
		return nil, s.internal("listing nodes", err)
	}
	out := &adminv1.NodeDetail{}
	for _, n := range nodes {
		if n.DeviceID == id {
			out.Node = &adminv1.Node{
				DeviceId:       n.DeviceID.String(),
				Name:           n.Name,
				Platform:       n.Platform,
				Version:        n.Version,
				Online:         s.cfg.Sessions.Online(id),
				LastSeenUnixMs: n.LastSeen.UnixMilli(),
				Transport:      s.transport(id),
			}
		}
	}
	if out.Node == nil {
		return nil, status.Errorf(codes.NotFound, "no node %s (it has not connected since pairing, or was removed)", id)
	}
	if s.cfg.Nodes != nil {
		out.Capabilities = s.cfg.Nodes.Node(id).Capabilities
	}
	if s.cfg.Events != nil {
		for _, e := range s.cfg.Events.Recent(id) {
			out.RecentEvents = append(out.RecentEvents, eventProto(e))
		}
	}
	return out, nil
}

// Invoke runs a capability on a node and waits for its result.
func (s *Service) Invoke(ctx context.Context, req *adminv1.InvokeRequest) (*adminv1.InvokeResponse, error) {
	if s.cfg.Nodes == nil {
		return nil, status.Error(codes.Unavailable, "this gateway does not run invocations")
	}
	id, err := identity.ParseDeviceID(req.GetDeviceId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if req.GetTimeoutMs() < 0 || req.GetQueueTtlMs() < 0 {
		return nil, status.Error(codes.InvalidArgument, "timeout and queue TTL must not be negative")
	}
	resp, err := s.cfg.Nodes.Invoke(ctx, dispatch.Request{
		DeviceID:   id,
		Capability: req.GetCapability(),
		Args:       req.GetArgsJson(),
		Timeout:    time.Duration(req.GetTimeoutMs()) * time.Millisecond,
		QueueTTL:   time.Duration(req.GetQueueTtlMs()) * time.Millisecond,
		Caller:     "gateway admin",
	})
	switch {
	case err == nil:
	case errors.Is(err, dispatch.ErrUnknownDevice):
		return nil, status.Errorf(codes.NotFound, "no device %s", id)
	case errors.Is(err, dispatch.ErrRevoked):
		return nil, status.Errorf(codes.FailedPrecondition, "device %s is revoked", id)
	case errors.Is(err, dispatch.ErrInvalidArgs), errors.Is(err, dispatch.ErrNoCapability):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	default:
		return nil, s.internal("invoking", err)
	}
	r := resp.Result
	return &adminv1.InvokeResponse{
		RequestId:    resp.RequestID,
		Ok:           r.GetOk(),
		OutputJson:   r.GetOutputJson(),
		ErrorCode:    r.GetErrorCode(),
		ErrorMessage: r.GetErrorMessage(),
		Queued:       resp.Queued,
	}, nil
}

// WatchEvents streams node events until the client goes away.
func (s *Service) WatchEvents(req *adminv1.WatchEventsRequest, stream adminv1.Admin_WatchEventsServer) error {
	if s.cfg.Events == nil {
		return status.Error(codes.Unavailable, "this gateway has no event stream")
	}
	var id identity.DeviceID
	if req.GetDeviceId() != "" {
		var err error
		if id, err = identity.ParseDeviceID(req.GetDeviceId()); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
	}
	watch := s.cfg.Events.Watch(stream.Context(), id)
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

func eventProto(e events.Event) *adminv1.Event {
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
