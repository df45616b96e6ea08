package grpccarrier

import (
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// session is one StreamEvents call: a device's session over gRPC.
type session struct {
	srv      *Server
	id       identity.DeviceID
	rawCerts [][]byte
	remote   string

	// ctrl and out hold the frames to send, each in order; the session's
	// writer sends them, ctrl's (lease grants) first, so no caller blocks on
	// a node that does not read and a burst of calls cannot hold up a
	// grant.
	ctrl, out chan *nodev1.Frame
	// stop is closed when this side ends the session (endLocked).
	stop chan struct{}
	// ended is closed when the session is over: waiting calls fail.
	ended chan struct{}

	// Guarded by srv.mu.
	info      SessionInfo
	endStatus error  // the status StreamEvents returns, set by endLocked
	endReason string // the NodeGone reason that goes with it
	gone      string // why the session ended, set before ended closes
}

// endLocked ends ss with code and msg (what the node sees) and reason (what
// the Registry hears), unless it was ended already. srv.mu must be held.
func (ss *session) endLocked(code codes.Code, msg, reason string) bool {
	if ss.endStatus != nil {
		return false
	}
	ss.endStatus = status.Error(code, msg)
	ss.endReason = reason
	close(ss.stop)
	return true
}

func (ss *session) end(code codes.Code, msg, reason string) {
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	ss.endLocked(code, msg, reason)
}

// status is the status StreamEvents returns once stop is closed.
func (ss *session) status() error {
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	return ss.endStatus
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
		id:       pd.id,
		rawCerts: pd.rawCerts,
		remote:   pd.remote,
		ctrl:     make(chan *nodev1.Frame, ctrlQueue),
		out:      make(chan *nodev1.Frame, outQueue),
		stop:     make(chan struct{}),
		ended:    make(chan struct{}),
	}
	if !s.track(ss) {
		return status.Error(codes.Unavailable, shutdownMessage)
	}
	defer s.untrack(ss)
	if err := s.attach(ss); err != nil {
		s.mu.Lock()
		ss.gone = "session refused"
		close(ss.ended)
		s.mu.Unlock()
		return err
	}
	log := s.log.With("device", ss.id, "remote", ss.remote)
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
				ss.end(codes.Unavailable, "sending failed", fmt.Sprintf("connection lost: %v", err))
				return
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
	if r := ss.reasonIfEnded(); r != "" {
		reason = r
	}
	log.Info("node session ended", "reason", reason)
	s.finish(ss, reason)
	return err
}

// reasonIfEnded is endReason, if this side ended ss.
func (ss *session) reasonIfEnded() string {
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	return ss.endReason
}

// serveSession reads frames until the session ends; it returns why the
// session ended and the status for StreamEvents.
func (s *Server) serveSession(ss *session, in <-chan received) (string, error) {
	ttl := s.cfg.LeaseTTL
	lease := time.NewTimer(ttl)
	defer lease.Stop()
	for {
		select {
		case <-ss.stop:
			return "", ss.status()
		case <-lease.C:
			ss.end(codes.DeadlineExceeded, leaseMessage, leaseMessage)
			return "", ss.status()
		case r := <-in:
			if r.err != nil {
				return recvEnd(r.err)
			}
			lease.Reset(ttl)
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
		s.cfg.Registry.NodeRenewed(ss.id, s.now())
		ss.grant(&nodev1.Frame{Body: &nodev1.Frame_LeaseGranted{LeaseGranted: &nodev1.LeaseGranted{
			Sequence:   body.LeaseRenewal.GetSequence(),
			LeaseTtlMs: s.cfg.LeaseTTL.Milliseconds(),
		}}})
	case *nodev1.Frame_CapabilitiesChanged:
		caps := body.CapabilitiesChanged.GetCapabilities()
		s.mu.Lock()
		ss.info.Capabilities = caps
		s.mu.Unlock()
		s.cfg.Registry.CapabilitiesChanged(ss.id, caps)
	case *nodev1.Frame_Event:
		s.cfg.Registry.NodeEvent(ss.id, body.Event)
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
	ss.srv.log.Info("node broke the protocol", "device", ss.id, "err", msg)
	ss.end(codes.InvalidArgument, msg, "protocol error: "+msg)
}

// grant queues a lease grant without waiting; a node that lets ctrlQueue
// grants pile up is not reading, and its session ends.
func (ss *session) grant(f *nodev1.Frame) {
	select {
	case ss.ctrl <- f:
	default:
		ss.end(codes.ResourceExhausted, "the node is not reading its stream", "node not reading")
	}
}

// track adds ss to sessions unless the server is closing.
func (s *Server) track(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions[ss] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) untrack(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	s.handlers.Done()
}

// attach makes ss its device's current session: it takes the device's
// registration, replaces an older session and tells the Registry the node
// is ready. The lease is granted (sequence 0) before any call can be
// queued, so the node knows it is attached.
func (s *Server) attach(ss *session) error {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	// Authenticate again under regMu: the device may have been revoked
	// since the RPC began, and Disconnect may have run before track.
	if _, err := s.cfg.Authenticate(ss.rawCerts); err != nil {
		return authStatus(err)
	}
	now := s.now()
	s.mu.Lock()
	if ss.endStatus != nil { // Disconnect or Close came first
		err := ss.endStatus
		s.mu.Unlock()
		return err
	}
	reg := s.pending[ss.id]
	if reg == nil || now.Sub(reg.at) > s.cfg.LeaseTTL {
		delete(s.pending, ss.id)
		s.mu.Unlock()
		return status.Error(codes.FailedPrecondition, "call RegisterNode first")
	}
	delete(s.pending, ss.id)
	ss.info = reg.info
	ss.ctrl <- &nodev1.Frame{Body: &nodev1.Frame_LeaseGranted{LeaseGranted: &nodev1.LeaseGranted{
		LeaseTtlMs: s.cfg.LeaseTTL.Milliseconds(),
	}}}
	old := s.current[ss.id]
	s.current[ss.id] = ss
	if old != nil && old.endLocked(codes.Aborted, replacedMessage, "replaced") {
		s.log.Info("node session replaced", "device", ss.id, "old", old.remote, "new", ss.remote)
	}
	info := ss.info
	s.mu.Unlock()
	s.cfg.Registry.NodeReady(info)
	return nil
}

// finish ends ss: the calls waiting on it fail, and if it is still its
// device's current session the Registry hears NodeGone.
func (s *Server) finish(ss *session, reason string) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.mu.Lock()
	current := s.current[ss.id] == ss
	if current {
		delete(s.current, ss.id)
	}
	for k, w := range s.waiters {
		if w.ss == ss {
			delete(s.waiters, k)
		}
	}
	ss.gone = reason
	close(ss.ended)
	s.mu.Unlock()
	if current {
		s.log.Info("node gone", "device", ss.id, "reason", reason)
		s.cfg.Registry.NodeGone(ss.id, s.now(), reason)
	}
}
