package carrier

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palyra/palyra-go/internal/callcode"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// sessionCalls are the calls running on a session, for its end to reach
// them. A call's context is the only one it has: the session's end is not
// a parent of it but this list, so that a call can outlive its session
// (Config.Calls).
type sessionCalls struct {
	// parent is every call's context's parent: Config.Calls, or
	// context.Background() without it.
	parent context.Context
	// outlive says Config.Calls is set: calls go on past their session.
	outlive bool

	mu      sync.Mutex
	running map[*Call]struct{}
	// ended is set when the session ends (EndCalls); endCause is then what
	// its calls end with, nil if they go on.
	ended    atomic.Bool
	endCause error
	// waiting counts the running calls the session's end waits for.
	waiting sync.WaitGroup
}

func (sc *sessionCalls) init(parent context.Context) {
	sc.parent, sc.outlive, sc.running = parent, parent != nil, make(map[*Call]struct{})
	if parent == nil {
		sc.parent = context.Background()
	}
}

// Call is one call from the gateway on a session: StartCall makes it, the
// carrier runs it (Run) and then releases it (End).
type Call struct {
	s            *Session
	inv          *nodev1.Invoke
	ctx          context.Context
	cancel       context.CancelCauseFunc
	stopDeadline context.CancelFunc
	// outlived, guarded by the session's calls.mu, says the session ended
	// under the call and let it go on.
	outlived bool
}

// StartCall makes the call inv asks for. Its context ends at inv's
// deadline (on the gateway's clock), with Cancel, with Config.Calls, and
// as EndCalls says.
func (s *Session) StartCall(inv *nodev1.Invoke) *Call {
	cl := &Call{s: s, inv: inv}
	cl.ctx, cl.cancel = context.WithCancelCause(s.calls.parent)
	if d := inv.GetDeadlineUnixMs(); d > 0 {
		cl.ctx, cl.stopDeadline = context.WithDeadline(cl.ctx, time.UnixMilli(d).Add(-s.skew))
	}
	sc := &s.calls
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.ended.Load() {
		if sc.endCause == nil {
			cl.outlived = true
			return cl
		}
		cl.cancel(sc.endCause)
	}
	sc.running[cl] = struct{}{}
	sc.waiting.Add(1)
	return cl
}

// Invoke is what the gateway asked for.
func (cl *Call) Invoke() *nodev1.Invoke { return cl.inv }

// Context is the call's context; it ends with End at the latest.
func (cl *Call) Context() context.Context { return cl.ctx }

// Cancel ends the call's context with cause: the gateway canceled it.
func (cl *Call) Cancel(cause error) { cl.cancel(cause) }

// Run runs the call with the configured InvokeHandler and returns its
// result, carrying the call's request ID. Without a handler the node
// refuses the call (unknown_capability); a handler that returns no result
// fails it. answer says whether anyone still waits for the result: not
// when the gateway canceled the call or Config.Calls ended, nor once the
// session has ended; a call past its deadline is answered, with what the
// handler made of that.
func (cl *Call) Run(progress func(message string)) (res *nodev1.Result, answer bool) {
	if cl.s.invoke == nil {
		res = &nodev1.Result{ErrorCode: callcode.UnknownCapability, ErrorMessage: "this node shares no capabilities"}
	} else {
		res = cl.s.invoke(cl.ctx, cl.inv, progress)
	}
	if res == nil {
		res = &nodev1.Result{ErrorCode: callcode.Failed, ErrorMessage: "the capability returned no result"}
	}
	// A handler may hand out its result again (the node agent's, to a
	// later delivery of the call), so it is written only if it must be.
	if id := cl.inv.GetRequestId(); res.GetRequestId() != id {
		res.RequestId = id
	}
	cause := context.Cause(cl.ctx)
	return res, !cl.s.calls.ended.Load() && (cause == nil || cause == context.DeadlineExceeded)
}

// End releases the call's context; the session's end no longer waits for
// the call.
func (cl *Call) End() {
	if cl.stopDeadline != nil {
		cl.stopDeadline()
	}
	cl.cancel(nil)
	sc := &cl.s.calls
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !cl.outlived {
		delete(sc.running, cl)
		sc.waiting.Done()
	}
}

// EndCalls ends the session's calls as the session ends; serve is the
// context the carrier's Serve ran with. If serve has ended, the calls end
// with its cause. Otherwise, with Config.Calls set, they go on past the
// session (the gateway delivers them again on the next one, and nobody
// reads their results here), and without it they end with
// ErrSessionEnded. A call that starts later fares the same. Only the first
// call counts.
func (s *Session) EndCalls(serve context.Context) {
	sc := &s.calls
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.ended.Load() {
		return
	}
	var cause error
	switch {
	case serve.Err() != nil:
		cause = context.Cause(serve)
	case !sc.outlive:
		cause = ErrSessionEnded
	}
	sc.endCause = cause
	sc.ended.Store(true)
	for cl := range sc.running {
		if cause != nil {
			cl.cancel(cause)
			continue
		}
		cl.outlived = true
		delete(sc.running, cl)
		sc.waiting.Done()
	}
}

// WaitCalls waits for the calls EndCalls ended (not for those it let go
// on). The carrier calls it after EndCalls, once no call can start.
func (s *Session) WaitCalls() { s.calls.waiting.Wait() }
