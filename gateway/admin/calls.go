package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/callcode"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// CallState is where a queued call stands. The values are the store's.
type CallState string

// The states of a queued call: queued, then delivered (again after each
// reconnect); then one of the final four.
const (
	CallQueued    = CallState(store.InvocationQueued)    // waiting for its node
	CallDelivered = CallState(store.InvocationDelivered) // sent to its node, no result yet
	CallDone      = CallState(store.InvocationDone)      // its result says ok
	CallFailed    = CallState(store.InvocationFailed)    // its result says not ok
	CallExpired   = CallState(store.InvocationExpired)   // its time ran out before a result
	CallCancelled = CallState(store.InvocationCancelled) // an admin cancelled it before a result
)

// CallStates are all the states, in their order.
var CallStates = []CallState{CallQueued, CallDelivered, CallDone, CallFailed, CallExpired, CallCancelled}

// Pending reports whether a call in state s may still get a result.
func (s CallState) Pending() bool { return store.InvocationState(s).Pending() }

// Bounds of a listing of calls.
const (
	DefaultCallLimit = 50
	MaxCallLimit     = store.MaxListInvocations
)

// Call is a queued call: one invoked with a queue TTL, kept with its result
// whether or not its caller is still there to get it. Direct calls are not
// kept (the audit log has them).
type Call struct {
	RequestID  string
	DeviceID   identity.DeviceID
	Capability string
	// Args is the JSON object the call was made with.
	Args   json.RawMessage
	Caller string
	State  CallState
	// Attempts counts its deliveries.
	Attempts  int
	CreatedAt time.Time
	// ExpiresAt is when it expires if it has no result by then.
	ExpiresAt time.Time
	// FinishedAt is when it ended (for an expired call, its ExpiresAt), or
	// zero while it is pending.
	FinishedAt time.Time
	// Result is its outcome, nil while it is pending: the node's result
	// (done, failed), or the gateway's words (expired, cancelled).
	Result *InvokeResult
}

// CallFilter selects calls to list.
type CallFilter struct {
	// DeviceID keeps one node's calls; "" keeps all.
	DeviceID string
	// States keeps the calls in one of them; none keeps all.
	States []CallState
	// Limit bounds the listing: 0 means DefaultCallLimit, at most
	// MaxCallLimit.
	Limit int
}

// Calls lists queued calls, newest first.
func (s *Service) Calls(ctx context.Context, f CallFilter) ([]Call, error) {
	var filter store.InvocationFilter
	if f.DeviceID != "" {
		id, err := parseDeviceID(f.DeviceID)
		if err != nil {
			return nil, err
		}
		filter.DeviceID = id
	}
	switch {
	case f.Limit == 0:
		filter.Limit = DefaultCallLimit
	case f.Limit < 0 || f.Limit > MaxCallLimit:
		return nil, invalid("limit", "a listing holds 1 to %d calls, not %d", MaxCallLimit, f.Limit)
	default:
		filter.Limit = f.Limit
	}
	now := s.cfg.Now()
	for _, st := range f.States {
		if !st.known() {
			return nil, invalid("state", "no call state %q; the states are %v", st, CallStates)
		}
		filter.States = append(filter.States, store.InvocationState(st))
		// A call whose time ran out is expired, though the store may
		// still say queued or delivered until its sweep; filter on what
		// is shown.
		if st == CallExpired {
			filter.States = append(filter.States, store.InvocationQueued, store.InvocationDelivered)
		}
	}
	list, err := s.cfg.Store.ListInvocations(ctx, filter)
	if err != nil {
		return nil, s.internal("listing calls", err)
	}
	out := make([]Call, 0, len(list))
	for _, inv := range list {
		c := call(inv, now)
		if len(f.States) == 0 || containsState(f.States, c.State) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s CallState) known() bool { return containsState(CallStates, s) }

func containsState(list []CallState, s CallState) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// GetCall returns the queued call requestID. If it is pending, it waits up
// to wait for it to end (never beyond its expiry), and returns it as it is
// then: pending still when wait ran out. The wait ends with ctx too, which
// gives ctx's error.
func (s *Service) GetCall(ctx context.Context, requestID string, wait time.Duration) (Call, error) {
	id, err := parseRequestID(requestID)
	if err != nil {
		return Call{}, err
	}
	if wait < 0 {
		return Call{}, invalid("wait", "the wait must not be negative, not %v", wait)
	}
	var inv store.Invocation
	if wait > 0 && s.cfg.Nodes != nil {
		wctx, cancel := context.WithTimeout(ctx, wait)
		inv, err = s.cfg.Nodes.Await(wctx, id)
		cancel()
		if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = nil // the wait ran out: the call as it is
		}
	} else {
		inv, err = s.cfg.Store.GetInvocation(ctx, id)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Call{}, &NotFoundError{What: "call", ID: id}
	case ctx.Err() != nil:
		return Call{}, ctx.Err()
	case err != nil:
		return Call{}, s.internal("reading a call", err)
	}
	return call(inv, s.cfg.Now()), nil
}

// CancelCall cancels the pending call requestID and returns the state it
// was in and the call, cancelled. A call still queued never runs. One
// already delivered may have run, or be running, on its node: if it is
// being delivered now, the node is told to stop it (what it did already
// stays done); either way it is not delivered again, and a result that
// comes after is discarded. A call that has ended is refused with
// ErrCallEnded.
func (s *Service) CancelCall(ctx context.Context, requestID string) (CallState, Call, error) {
	if s.cfg.Nodes == nil {
		return "", Call{}, refuse(ErrUnavailable, nil, "this gateway does not run invocations")
	}
	id, err := parseRequestID(requestID)
	if err != nil {
		return "", Call{}, err
	}
	was, inv, err := s.cfg.Nodes.Cancel(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", Call{}, &NotFoundError{What: "call", ID: id}
	case errors.Is(err, store.ErrIllegalTransition):
		ended, gerr := s.cfg.Store.GetInvocation(ctx, id)
		if gerr != nil {
			return "", Call{}, s.internal("reading a call", gerr)
		}
		c := call(ended, s.cfg.Now())
		return "", Call{}, refuse(ErrCallEnded, nil, "call %s has ended already (%s at %s); there is nothing to cancel",
			id, c.State, c.FinishedAt.UTC().Format(time.RFC3339))
	case err != nil:
		return "", Call{}, s.internal("cancelling a call", err)
	}
	s.cfg.Logger.Info("call cancelled", "request_id", id, "device", inv.DeviceID, "was", was)
	return CallState(was), call(inv, s.cfg.Now()), nil
}

// parseRequestID reads a request ID in any case, as the canonical text the
// store keeps.
func parseRequestID(s string) (string, error) {
	u, err := ulid.ParseStrict(s)
	if err != nil {
		return "", &InvalidArgumentError{Argument: "request_id",
			Err: fmt.Errorf("request ID %q is not a ULID (26 characters of Crockford base32, as calls list shows them): %w", s, err)}
	}
	return u.String(), nil
}

// call is how the admin API shows a stored invocation at now: a pending one
// whose time ran out is expired, whether or not the sweeper marked it so.
func call(inv store.Invocation, now time.Time) Call {
	c := Call{
		RequestID:  inv.RequestID,
		DeviceID:   inv.DeviceID,
		Capability: inv.Capability,
		Args:       inv.Args,
		Caller:     inv.Caller,
		State:      CallState(inv.State),
		Attempts:   inv.Attempts,
		CreatedAt:  inv.CreatedAt,
		ExpiresAt:  inv.ExpiresAt,
		FinishedAt: inv.FinishedAt,
	}
	if c.State.Pending() && !now.Before(inv.ExpiresAt) {
		c.State, c.FinishedAt = CallExpired, inv.ExpiresAt
	}
	switch {
	case c.State == CallExpired:
		c.Result = &InvokeResult{RequestID: inv.RequestID, ErrorCode: callcode.Expired, Queued: true,
			ErrorMessage: fmt.Sprintf("no result from node %s before the call expired at %s", inv.DeviceID, inv.ExpiresAt.UTC().Format(time.RFC3339))}
	case !c.State.Pending():
		var res nodev1.Result
		if err := proto.Unmarshal(inv.Result, &res); err != nil {
			res = nodev1.Result{ErrorCode: callcode.BadAnswer, ErrorMessage: "the kept result could not be read"}
		}
		c.Result = &InvokeResult{RequestID: inv.RequestID, OK: res.GetOk(), Output: res.GetOutputJson(),
			ErrorCode: res.GetErrorCode(), ErrorMessage: res.GetErrorMessage(), Queued: true}
	}
	return c
}
