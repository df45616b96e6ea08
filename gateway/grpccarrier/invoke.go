package grpccarrier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// waitKey names a call: only the device it was sent to can answer it.
type waitKey struct {
	id        identity.DeviceID
	requestID string
}

// waiter is a call waiting for its result.
type waiter struct {
	ss       *session
	progress chan *nodev1.Progress
	// result receives at most one Result: whoever takes the waiter out of
	// Server.waiters (under mu) sends it.
	result chan *nodev1.Result
}

// Invoke sends inv to device id on its current session and waits for the
// result, which the node submits with SubmitCapabilityResult; progress (if
// not nil) is called, on Invoke's goroutine, for each Progress the node
// reports. When ctx ends first the node is sent Cancel and Invoke returns
// ctx's error. Errors wrap carrier.ErrNodeOffline (no session) or
// carrier.ErrNodeGone (the session ended before the result).
//
// Progress travels on the session's stream and the result on its own RPC,
// so a report sent just before the result may arrive after it and be
// dropped.
func (s *Server) Invoke(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, progress func(*nodev1.Progress)) (*nodev1.Result, error) {
	if inv.GetRequestId() == "" {
		return nil, errors.New("grpccarrier: Invoke needs a request ID")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := waitKey{id: id, requestID: inv.GetRequestId()}
	w := &waiter{
		progress: make(chan *nodev1.Progress, progressQueue),
		result:   make(chan *nodev1.Result, 1),
	}
	// A session replaced while the call runs stays open until it is done.
	ss, done, err := carrier.StartCall(s.reg, id, func(ss *session) bool { return ss.srv == s })
	if err != nil {
		return nil, err
	}
	defer done()
	s.mu.Lock()
	if _, dup := s.waiters[key]; dup {
		s.mu.Unlock()
		return nil, fmt.Errorf("grpccarrier: call %s to device %s is already waiting", inv.GetRequestId(), id)
	}
	w.ss = ss
	s.waiters[key] = w
	s.mu.Unlock()
	defer s.dropWaiter(key, w)

	select {
	case ss.out <- &nodev1.Frame{Body: &nodev1.Frame_Invoke{Invoke: inv}}:
	case <-ss.ended:
		return nil, fmt.Errorf("%w: %s", carrier.ErrNodeGone, ss.goneReason())
	case <-ctx.Done():
		return nil, ctx.Err() // never queued: the node does not know it
	}
	for {
		select {
		case p := <-w.progress:
			if progress != nil {
				progress(p)
			}
		case r := <-w.result:
			w.drainProgress(progress)
			return r, nil
		case <-ss.ended:
			// A result that came before the end counts.
			select {
			case r := <-w.result:
				w.drainProgress(progress)
				return r, nil
			default:
			}
			return nil, fmt.Errorf("%w: %s", carrier.ErrNodeGone, ss.goneReason())
		case <-ctx.Done():
			if s.dropWaiter(key, w) {
				s.sendCancel(ss, inv.GetRequestId(), context.Cause(ctx))
			}
			return nil, ctx.Err()
		}
	}
}

// drainProgress reports the progress that arrived before the result.
func (w *waiter) drainProgress(progress func(*nodev1.Progress)) {
	for {
		select {
		case p := <-w.progress:
			if progress != nil {
				progress(p)
			}
		default:
			return
		}
	}
}

// dropWaiter removes w if it is still waiting, and reports whether it was.
func (s *Server) dropWaiter(key waitKey, w *waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters[key] != w {
		return false
	}
	delete(s.waiters, key)
	return true
}

// sendCancel tells the node its caller gave up on a call, waiting at most
// cancelSendTimeout for room in the session's queue.
func (s *Server) sendCancel(ss *session, requestID string, cause error) {
	reason := "canceled"
	if cause != nil {
		reason = cause.Error()
	}
	f := &nodev1.Frame{Body: &nodev1.Frame_Cancel{Cancel: &nodev1.Cancel{RequestId: requestID, Reason: reason}}}
	t := time.NewTimer(cancelSendTimeout)
	defer t.Stop()
	select {
	case ss.out <- f:
	case <-ss.ended:
	case <-t.C:
		s.log.Info("could not tell the node a call was canceled", "device", ss.ID, "request_id", requestID)
	}
}

// deliverProgress hands a Progress from ss to the call it names, if that
// call was sent on ss.
func (s *Server) deliverProgress(ss *session, p *nodev1.Progress) {
	s.mu.Lock()
	w := s.waiters[waitKey{id: ss.ID, requestID: p.GetRequestId()}]
	s.mu.Unlock()
	if w == nil || w.ss != ss {
		s.log.Debug("progress for no waiting call", "device", ss.ID, "request_id", clip(p.GetRequestId()))
		return
	}
	select {
	case w.progress <- p:
	default:
		s.log.Debug("progress dropped: the caller is behind", "device", ss.ID, "request_id", p.GetRequestId())
	}
}
