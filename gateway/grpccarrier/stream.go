package grpccarrier

import (
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// session is one StreamEvents call: a device's session over gRPC, its
// registry entry and its wire state.
type session struct {
	*carrier.Session
	srv *Server

	// ctrl and out hold the frames to send, each in order; the session's
	// writer sends them, ctrl's (lease grants) first, so no caller blocks on
	// a node that does not read and a burst of calls cannot hold up a
	// grant.
	ctrl, out chan *nodev1.Frame
	// stop is closed when the gateway ends the session (Session.Close).
	stop chan struct{}
	// ended is closed when the session is over: waiting calls fail.
	ended chan struct{}
	// wentAway is closed once the writer has sent a GoAway.
	wentAway chan struct{}

	// gone is why the session ended, set before ended closes; guarded by
	// srv.mu.
	gone string
}

// end ends ss with kind, msg (what the node sees) and reason (what the
// runtime hears), unless it was ended already.
func (ss *session) end(kind carrier.EndKind, msg, reason string) {
	ss.srv.reg.End(ss.Session, carrier.End{Kind: kind, Message: msg, Reason: reason})
}

// status is the status StreamEvents returns once stop is closed.
func (ss *session) status() error {
	e, _ := ss.srv.reg.Ended(ss.Session)
	return endStatus(e)
}

// endStatus is the status a session's end is signalled with.
func endStatus(e carrier.End) error {
	switch e.Kind {
	case carrier.EndRevoked:
		msg := revokedMessage
		if e.Message != revokedMessage {
			msg += ": " + e.Message
		}
		return status.Error(codes.PermissionDenied, msg)
	case carrier.EndReplaced:
		return status.Error(codes.Aborted, e.Message)
	case carrier.EndLeaseExpired:
		return status.Error(codes.DeadlineExceeded, e.Message)
	case carrier.EndShutdown, carrier.EndLost:
		return status.Error(codes.Unavailable, e.Message)
	case carrier.EndProtocol:
		return status.Error(codes.InvalidArgument, e.Message)
	case carrier.EndNotReading:
		return status.Error(codes.ResourceExhausted, e.Message)
	default:
		return status.Error(codes.Internal, e.Message)
	}
}

// goAwayFlush bounds how long a session that ends for a shutdown waits
// for its writer to send the GoAway before the status ends the stream
// (what is not sent by then is lost with the stream).
const goAwayFlush = 500 * time.Millisecond

// closeStream is the session's Close: it stops the handler, which ends
// StreamEvents with e's status. A shutdown that gives the node a window
// queues a GoAway first, ahead of the calls.
func (ss *session) closeStream(e carrier.End) {
	if e.Kind == carrier.EndShutdown && e.ReconnectWithin > 0 {
		select {
		case ss.ctrl <- &nodev1.Frame{Body: &nodev1.Frame_GoAway{GoAway: &nodev1.GoAway{
			ReconnectWithinMs: e.ReconnectWithin.Milliseconds(),
			Message:           e.Message,
		}}}:
		default: // lease grants pile up: the node is not reading
		}
	}
	close(ss.stop)
}

// awaitGoAway waits (at most goAwayFlush) for a GoAway queued by
// closeStream to be sent, if one was.
func (ss *session) awaitGoAway() {
	if e, _ := ss.srv.reg.Ended(ss.Session); e.Kind != carrier.EndShutdown || e.ReconnectWithin <= 0 {
		return
	}
	t := time.NewTimer(goAwayFlush)
	defer t.Stop()
	select {
	case <-ss.wentAway:
	case <-ss.ended:
	case <-t.C:
	}
}

// goneReason is why ss ended, once ended is closed.
func (ss *session) goneReason() string {
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	return ss.gone
}

// received is one Recv's outcome.
type received struct {
	f   *nodev1.Frame
	err error
}

// streamEvents runs one session from authentication to its end.
func (s *Server) streamEvents(stream grpc.BidiStreamingServer[nodev1.Frame, nodev1.Frame]) error {
	pd, err := s.authenticate(stream.Context())
	if err != nil {
		return err
	}
	ss := &session{
		srv:      s,
		ctrl:     make(chan *nodev1.Frame, ctrlQueue),
		out:      make(chan *nodev1.Frame, outQueue),
		stop:     make(chan struct{}),
		ended:    make(chan struct{}),
		wentAway: make(chan struct{}),
	}
	ss.Session = &carrier.Session{
		ID:        pd.id,
		Transport: wire.TransportGRPC,
		RawCerts:  pd.rawCerts,
		Remote:    pd.remote,
		Conn:      ss,
		Close:     ss.closeStream,
	}
	if !s.startHandler() {
		return status.Error(codes.Unavailable, shutdownMessage)
	}
	defer s.handlers.Done()
	if !s.reg.Track(ss.Session) {
		return status.Error(codes.Unavailable, shutdownMessage)
	}
	if err := s.attach(ss); err != nil {
		s.finish(ss, s.reg.Detach(ss.Session, "session refused"))
		return err
	}
	log := s.log.With("device", ss.ID, "remote", ss.Remote)
	log.Info("node session started")

	// The writer sends the queued frames; a Send blocked by a node that
	// does not read ends when the handler returns.
	go func() {
		for {
			var f *nodev1.Frame
			select {
			case f = <-ss.ctrl:
			default:
				select {
				case f = <-ss.ctrl:
				case f = <-ss.out:
				case <-ss.ended:
					return
				}
			}
			if err := stream.Send(f); err != nil {
				ss.end(carrier.EndLost, "sending failed", fmt.Sprintf("connection lost: %v", err))
				return
			}
			if f.GetGoAway() != nil {
				close(ss.wentAway)
			}
		}
	}()
	// The reader hands frames to the loop; Recv returns once the handler
	// has returned, at the latest.
	in := make(chan received)
	go func() {
		for {
			f, err := stream.Recv()
			select {
			case in <- received{f, err}:
			case <-ss.ended:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	reason, err := s.serveSession(ss, in)
	reason = s.reg.Detach(ss.Session, reason)
	log.Info("node session ended", "reason", reason)
	s.finish(ss, reason)
	return err
}

// serveSession reads frames until the session ends; it returns why the
// session ended and the status for StreamEvents.
func (s *Server) serveSession(ss *session, in <-chan received) (string, error) {
	lease := s.leases.Hold(func() { ss.end(carrier.EndLeaseExpired, leaseMessage, leaseMessage) })
	defer lease.Release()
	for {
		select {
		case <-ss.stop:
			ss.awaitGoAway()
			return "", ss.status()
		case r := <-in:
			if r.err != nil {
				return recvEnd(r.err)
			}
			lease.Heard()
			s.handleFrame(ss, r.f)
		}
	}
}

// recvEnd explains a Recv error: the node went away.
func recvEnd(err error) (string, error) {
	if errors.Is(err, io.EOF) {
		return "node disconnected", nil // it closed its side: end cleanly
	}
	if status.Code(err) == codes.Canceled {
		return "node disconnected", err
	}
	return fmt.Sprintf("connection lost: %v", err), err
}

// handleFrame handles one frame from the node; a frame that does not
// belong on the stream ends the session.
func (s *Server) handleFrame(ss *session, f *nodev1.Frame) {
	switch body := f.Body.(type) {
	case *nodev1.Frame_LeaseRenewal:
		s.rt.NodeRenewed(ss.ID, s.reg.Now())
		ss.grant(&nodev1.Frame{Body: &nodev1.Frame_LeaseGranted{LeaseGranted: &nodev1.LeaseGranted{
			Sequence:   body.LeaseRenewal.GetSequence(),
			LeaseTtlMs: s.cfg.LeaseTTL.Milliseconds(),
		}}})
	case *nodev1.Frame_CapabilitiesChanged:
		s.reg.SetCapabilities(ss.Session, body.CapabilitiesChanged.GetCapabilities())
	case *nodev1.Frame_Event:
		s.rt.NodeEvent(ss.ID, body.Event)
	case *nodev1.Frame_Progress:
		s.deliverProgress(ss, body.Progress)
	case *nodev1.Frame_Result:
		ss.protocolError("results go through SubmitCapabilityResult")
	case nil:
		ss.protocolError("empty frame")
	default:
		ss.protocolError(fmt.Sprintf("unexpected frame %T", f.Body))
	}
}

// protocolError ends ss because the node broke the protocol.
func (ss *session) protocolError(msg string) {
	ss.srv.log.Info("node broke the protocol", "device", ss.ID, "err", msg)
	ss.end(carrier.EndProtocol, msg, "protocol error: "+msg)
}

// grant queues a lease grant without waiting; a node that lets ctrlQueue
// grants pile up is not reading, and its session ends.
func (ss *session) grant(f *nodev1.Frame) {
	select {
	case ss.ctrl <- f:
	default:
		ss.end(carrier.EndNotReading, "the node is not reading its stream", "node not reading")
	}
}

// startHandler counts a StreamEvents handler for Close, unless the server
// is closing.
func (s *Server) startHandler() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.handlers.Add(1)
	return true
}

// attach makes ss its device's current session (carrier.Registry.Attach):
// it takes the device's registration and tells the runtime the node is
// ready. The lease is granted (sequence 0) before ss becomes current, so
// before any call can be queued, and the node knows it is attached. The
// checks keep their order: authentication, then an end that came first
// (Disconnect, Close), then the registration, so a revoked node sees
// PermissionDenied rather than "call RegisterNode first".
func (s *Server) attach(ss *session) error {
	err := s.reg.Attach(ss.Session, func() (carrier.SessionInfo, error) {
		now := s.reg.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		reg := s.takePendingLocked(ss.ID)
		if reg == nil || now.Sub(reg.at) > s.cfg.LeaseTTL {
			return carrier.SessionInfo{}, errNotRegistered
		}
		ss.ctrl <- &nodev1.Frame{Body: &nodev1.Frame_LeaseGranted{LeaseGranted: &nodev1.LeaseGranted{
			LeaseTtlMs: s.cfg.LeaseTTL.Milliseconds(),
		}}}
		return reg.info, nil
	})
	switch {
	case err == nil:
		s.reg.Ready(ss.Session)
		return nil
	case errors.Is(err, carrier.ErrEnded):
		return ss.status()
	case errors.Is(err, errNotRegistered):
		return status.Error(codes.FailedPrecondition, "call RegisterNode first")
	default:
		return authStatus(err)
	}
}

// errNotRegistered: StreamEvents came without a fresh RegisterNode.
var errNotRegistered = errors.New("no pending registration")

// finish ends ss once the Registry has detached it: the calls waiting on it
// fail with reason.
func (s *Server) finish(ss *session, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.waiters {
		if w.ss == ss {
			delete(s.waiters, k)
		}
	}
	ss.gone = reason
	close(ss.ended)
}
