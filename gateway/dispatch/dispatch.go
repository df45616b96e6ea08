// Package dispatch is the gateway's node runtime for invocations: it knows
// which nodes are reachable and over which carrier (QUIC or the gRPC
// fallback), what each one shares, and it runs calls: a request ID (ULID)
// per call, the capability checked against the node's manifest before
// anything is sent, a deadline per call, and for offline nodes either a
// fast "node offline" or, when the caller asks, a queued call kept in the
// store and delivered when the node comes back.
package dispatch

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/callcode"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Carrier reaches the nodes attached through it.
type Carrier interface {
	// Invoke sends inv to device id and waits for its result, calling
	// progress for each progress report. It ends when ctx does.
	Invoke(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, progress func(*nodev1.Progress)) (*nodev1.Result, error)
}

// Errors for requests the dispatcher refuses outright.
var (
	ErrUnknownDevice = errors.New("no such device")
	ErrRevoked       = errors.New("device revoked")
	ErrInvalidArgs   = errors.New("arguments must be a JSON object")
	ErrNoCapability  = errors.New("no capability named")
)

// Defaults and limits.
const (
	DefaultTimeout = 30 * time.Second
	MaxTimeout     = 10 * time.Minute
	MaxQueueTTL    = 7 * 24 * time.Hour
	// MaxArgsSize bounds a call's arguments.
	MaxArgsSize = 64 << 10
)

// Config configures a Dispatcher.
type Config struct {
	Store *store.Store
	// Events receives invocation, online and offline events; nil drops them.
	Events *events.Hub
	// ErrorIs maps carrier errors: Offline reports "the node is not
	// attached" and Gone "the session ended mid-call".
	Offline, Gone func(error) bool
	Now           func() time.Time
	Rand          io.Reader
	Logger        *slog.Logger
	// Done, if set, hears of every finished call: the transport that
	// carried it ("" if none), "ok" or its error code, and how long it
	// took from dispatch to result.
	Done func(transport, outcome string, d time.Duration)
	// Audit, if set, takes the audit rows of direct calls without making
	// the call wait for the disk (the gateway's auditlog.Writer.Record);
	// otherwise each is written to Store at once.
	Audit func(store.AuditEvent)
	// Remote, if set, reaches the nodes other gateways of the database
	// hold (gateway/cluster): a direct call for a node not attached here
	// goes there before it is answered "offline" or queued.
	Remote Remote
	// Moved reports the carrier error "the node's session is on the other
	// carrier now; nothing was sent" (an Offline too): the call then goes
	// to the carrier it moved to.
	Moved func(error) bool
}

// Remote forwards a call to the gateway that holds its node. Forward
// reports handled false when no other gateway does; otherwise its result
// is the call's, with ctx's deadline already applied.
type Remote interface {
	Forward(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, timeout time.Duration) (res *nodev1.Result, handled bool)
}

// TransportPeer is the transport Config.Done names for a call another
// gateway carried.
const TransportPeer = "peer"

// Dispatcher runs invocations. It is safe for concurrent use.
type Dispatcher struct {
	cfg Config
	log *slog.Logger

	// mu is read-locked by the lookups of every call (reachable, Node),
	// which do not wait for each other; everything else write-locks it.
	mu sync.RWMutex
	// nodes holds the nodes seen since start; carrier is nil while one is
	// offline (its last manifest is kept for describing it).
	nodes map[identity.DeviceID]*attached
	// waiters maps the request ID of a queued call to those waiting for
	// its outcome: its caller, and Await's.
	waiters map[string][]chan *nodev1.Result
	// delivering maps the request ID of a queued call being delivered to
	// what ends its delivery (Cancel).
	delivering map[string]context.CancelCauseFunc
	// draining holds the devices whose queue is being delivered.
	draining map[identity.DeviceID]*drainState
	// attaches numbers the Attach calls; moves holds, per device, what
	// its next Attach or Detach closes, for calls waiting on a move.
	attaches uint64
	moves    map[identity.DeviceID]chan struct{}
}

type attached struct {
	carrier   Carrier
	transport string
	caps      []*nodev1.Capability
	// attach is the number of the Attach that made this entry.
	attach uint64
}

// moveWait bounds how long a call waits for the runtime to hear of a
// node's move to another carrier: the registry has made the new session
// current and the carrier's next step is to make it reachable, so it is
// only the time between two calls unless the new session fails.
const moveWait = 2 * time.Second

// New returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Store == nil {
		return nil, errors.New("dispatch: Config.Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Offline == nil {
		cfg.Offline = func(error) bool { return false }
	}
	if cfg.Gone == nil {
		cfg.Gone = func(error) bool { return false }
	}
	if cfg.Moved == nil {
		cfg.Moved = func(error) bool { return false }
	}
	if cfg.Events == nil {
		cfg.Events = events.New()
	}
	return &Dispatcher{
		cfg:        cfg,
		log:        cfg.Logger,
		nodes:      make(map[identity.DeviceID]*attached),
		waiters:    make(map[string][]chan *nodev1.Result),
		delivering: make(map[string]context.CancelCauseFunc),
		draining:   make(map[identity.DeviceID]*drainState),
		moves:      make(map[identity.DeviceID]chan struct{}),
	}, nil
}

// Attach makes the device reachable through carrier (replacing another
// carrier) with its manifest, and delivers its queued calls.
func (d *Dispatcher) Attach(id identity.DeviceID, transport string, carrier Carrier, caps []*nodev1.Capability) {
	d.mu.Lock()
	d.attaches++
	d.nodes[id] = &attached{carrier: carrier, transport: transport, caps: caps, attach: d.attaches}
	d.signalMoveLocked(id)
	d.mu.Unlock()
	d.publish(events.Event{DeviceID: id, Kind: events.KindOnline, Message: "connected over " + transport})
	d.drain(id)
}

// Detach makes the device unreachable, whichever carrier it was reached
// by: the caller knows its last session ended (a newer session's Attach
// comes after).
func (d *Dispatcher) Detach(id identity.DeviceID, reason string) {
	d.mu.Lock()
	n := d.nodes[id]
	gone := n != nil && n.carrier != nil
	if gone {
		n.carrier = nil
		d.signalMoveLocked(id)
	}
	d.mu.Unlock()
	if gone {
		d.publish(events.Event{DeviceID: id, Kind: events.KindOffline, Message: reason})
	}
}

// SetCapabilities replaces the device's manifest.
func (d *Dispatcher) SetCapabilities(id identity.DeviceID, caps []*nodev1.Capability) {
	d.mu.Lock()
	n := d.nodes[id]
	if n != nil {
		n.caps = caps
	}
	d.mu.Unlock()
	if n != nil {
		d.publish(events.Event{DeviceID: id, Kind: events.KindCapabilityChanged, Message: summarize(caps)})
	}
}

// summarize lists the enabled capabilities, for the event log.
func summarize(caps []*nodev1.Capability) string {
	var on []string
	for _, c := range caps {
		if c.GetEnabled() {
			on = append(on, c.GetName())
		}
	}
	if len(on) == 0 {
		return "nothing shared"
	}
	b, _ := json.Marshal(on)
	return "shared: " + string(b)
}

// Node is what the dispatcher knows of a reachable node.
type Node struct {
	Online       bool
	Transport    string
	Capabilities []*nodev1.Capability
}

// Node returns what is known of device id.
func (d *Dispatcher) Node(id identity.DeviceID) Node {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.nodes[id]
	if n == nil {
		return Node{}
	}
	if n.carrier == nil {
		return Node{Capabilities: n.caps}
	}
	return Node{Online: true, Transport: n.transport, Capabilities: n.caps}
}

// reachable returns a copy of the device's entry if it is online.
func (d *Dispatcher) reachable(id identity.DeviceID) *attached {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.nodes[id]
	if n == nil || n.carrier == nil {
		return nil
	}
	c := *n
	return &c
}

// signalMoveLocked wakes the calls waiting for device id to move. d.mu
// must be held.
func (d *Dispatcher) signalMoveLocked(id identity.DeviceID) {
	if ch := d.moves[id]; ch != nil {
		close(ch)
		delete(d.moves, id)
	}
}

// awaitMove waits, at most moveWait, until device id is reachable through
// another Attach than number from, and returns that entry; nil if it went
// offline, ctx ended or the wait timed out.
func (d *Dispatcher) awaitMove(ctx context.Context, id identity.DeviceID, from uint64) *attached {
	timeout := time.NewTimer(moveWait)
	defer timeout.Stop()
	for {
		d.mu.Lock()
		n := d.nodes[id]
		if n == nil || n.carrier == nil {
			d.mu.Unlock()
			return nil
		}
		if n.attach != from {
			c := *n
			d.mu.Unlock()
			return &c
		}
		moved := d.moves[id]
		if moved == nil {
			moved = make(chan struct{})
			d.moves[id] = moved
		}
		d.mu.Unlock()
		select {
		case <-moved:
		case <-timeout.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// Forget drops what is known of a removed device.
func (d *Dispatcher) Forget(id identity.DeviceID) {
	d.mu.Lock()
	delete(d.nodes, id)
	d.mu.Unlock()
	d.cfg.Events.Forget(id)
}

// Request is one call.
type Request struct {
	DeviceID   identity.DeviceID
	Capability string
	// Args is a JSON object; empty means {}.
	Args []byte
	// Timeout bounds waiting for the node's answer once the call is sent;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// QueueTTL, if positive, queues the call for an offline node for that
	// long instead of failing it.
	QueueTTL time.Duration
	// Caller names who asks, shown in consent prompts.
	Caller string
}

// Response is the outcome of a call.
type Response struct {
	RequestID string
	Result    *nodev1.Result
	// Queued reports that the call waited for the node to come online.
	Queued bool
}

// Invoke runs a call and returns its result. Calls that fail at the
// gateway or the node come back as a Result with ok false; the error is
// for requests refused outright (unknown or revoked device, bad
// arguments) and for ctx ending.
func (d *Dispatcher) Invoke(ctx context.Context, req Request) (*Response, error) {
	if err := check(&req); err != nil {
		return nil, err
	}
	now := d.cfg.Now()
	id, err := newRequestID(now, d.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("making a request ID: %w", err)
	}
	resp := &Response{RequestID: id.String()}
	inv := &nodev1.Invoke{RequestId: resp.RequestID, Capability: req.Capability, ArgsJson: req.Args, Caller: req.Caller}

	// A node online, here or on the gateway its call is forwarded to, has
	// a session that authenticated its certificate and is closed on
	// revocation; only others need looking up.
	transport := ""
	if n := d.reachable(req.DeviceID); n != nil {
		resp.Result, transport = d.send(ctx, req.DeviceID, n, inv, req.Timeout, nil), n.transport
	} else if d.cfg.Remote != nil {
		if res, ok := d.forward(ctx, req.DeviceID, inv, req.Timeout); ok {
			resp.Result, transport = res, TransportPeer
		}
	}
	if resp.Result == nil || resp.Result.GetErrorCode() == callcode.Offline && transport == TransportPeer {
		if err := d.checkDevice(ctx, req.DeviceID); err != nil {
			return nil, err
		}
	}
	if resp.Result != nil {
		if resp.Result.GetErrorCode() != callcode.Offline || req.QueueTTL <= 0 {
			if ctx.Err() != nil {
				// The node may have run it: the log says the caller left.
				d.audit(req.DeviceID, inv, failure(callcode.Canceled, "the caller gave up waiting"))
				return nil, ctx.Err()
			}
			d.done(transport, resp.Result, now)
			d.audit(req.DeviceID, inv, resp.Result)
			return resp, nil
		}
	} else if req.QueueTTL <= 0 {
		resp.Result = failure(callcode.Offline, "node %s is offline", req.DeviceID)
		d.done("", resp.Result, now)
		d.audit(req.DeviceID, inv, resp.Result)
		return resp, nil
	}
	resp.Queued = true
	resp.Result, err = d.queue(ctx, req, inv, now)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// check validates req and fills in defaults.
// newRequestID names a call made at now. The ULID's time part makes request
// IDs sort by creation; its 80 random bits come from rand (nil means
// crypto/rand: oklog/ulid would leave them zero).
func newRequestID(now time.Time, rand io.Reader) (ulid.ULID, error) {
	if now.Before(time.Unix(0, 0)) {
		return ulid.ULID{}, fmt.Errorf("the clock says %s, before 1970", now.UTC().Format(time.RFC3339))
	}
	if rand == nil {
		rand = crand.Reader
	}
	return ulid.New(ulid.Timestamp(now), rand)
}

func check(req *Request) error {
	if req.Capability == "" {
		return ErrNoCapability
	}
	if len(req.Args) == 0 {
		req.Args = []byte("{}")
	}
	if len(req.Args) > MaxArgsSize {
		return fmt.Errorf("%w: %d bytes is over the %d byte limit", ErrInvalidArgs, len(req.Args), MaxArgsSize)
	}
	if !isObject(req.Args) {
		return fmt.Errorf("%w (got %.40q)", ErrInvalidArgs, req.Args)
	}
	if req.Timeout <= 0 {
		req.Timeout = DefaultTimeout
	}
	req.Timeout = min(req.Timeout, MaxTimeout)
	req.QueueTTL = min(req.QueueTTL, MaxQueueTTL)
	return nil
}

// isObject reports whether b is one JSON object. The node checks the
// arguments against the capability's schema, so the gateway only makes
// sure they are an object, without decoding them.
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

// checkDevice refuses unknown and revoked devices.
func (d *Dispatcher) checkDevice(ctx context.Context, id identity.DeviceID) error {
	dev, err := d.cfg.Store.GetDevice(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %s", ErrUnknownDevice, id)
	case err != nil:
		return fmt.Errorf("looking up device %s: %w", id, err)
	case !dev.RevokedAt.IsZero():
		return fmt.Errorf("%w: %s", ErrRevoked, id)
	}
	return nil
}

// forward sends inv to the gateway that holds device id, waiting at most
// timeout for the result.
func (d *Dispatcher) forward(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, timeout time.Duration) (*nodev1.Result, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	inv.DeadlineUnixMs = d.cfg.Now().Add(timeout).UnixMilli()
	res, ok := d.cfg.Remote.Forward(ctx, id, inv, timeout)
	if ok {
		res.RequestId = inv.GetRequestId()
	}
	return res, ok
}

// RunLocal runs a call another gateway forwarded on device id's session
// here, as a direct call runs (the manifest checked, at most timeout),
// calling progress for its progress reports. The calling gateway keeps
// the call's audit row and metrics.
func (d *Dispatcher) RunLocal(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, timeout time.Duration, progress func(*nodev1.Progress)) *nodev1.Result {
	n := d.reachable(id)
	if n == nil {
		return failure(callcode.Offline, "node %s is offline", id)
	}
	res := d.send(ctx, id, n, inv, min(timeout, MaxTimeout), progress)
	res.RequestId = inv.GetRequestId()
	return res
}

// send checks inv against the node's manifest and sends it, waiting at
// most timeout for the result.
func (d *Dispatcher) send(ctx context.Context, id identity.DeviceID, n *attached, inv *nodev1.Invoke, timeout time.Duration, progress func(*nodev1.Progress)) *nodev1.Result {
	if res := checkManifest(n.caps, inv.GetCapability(), id); res != nil {
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	inv.DeadlineUnixMs = d.cfg.Now().Add(timeout).UnixMilli()
	res, err := n.carrier.Invoke(ctx, id, inv, progress)
	if err != nil && d.cfg.Moved(err) {
		// The node moved carriers as the call started; it goes where the
		// node is now (nothing was sent), once the runtime knows where.
		if moved := d.awaitMove(ctx, id, n.attach); moved != nil {
			if res := checkManifest(moved.caps, inv.GetCapability(), id); res != nil {
				return res
			}
			res, err = moved.carrier.Invoke(ctx, id, inv, progress)
		}
	}
	switch {
	case err == nil:
		res.RequestId = inv.GetRequestId()
		return res
	case d.cfg.Offline(err):
		return failure(callcode.Offline, "node %s is offline", id)
	case errors.Is(err, context.DeadlineExceeded):
		return failure(callcode.Timeout, "no result from the node within %v", timeout)
	case ctx.Err() != nil:
		return failure(callcode.Timeout, "the call was cancelled")
	case d.cfg.Gone(err):
		return failure(callcode.NodeGone, "the node disconnected during the call")
	default:
		d.log.Info("call failed", "device", id, "request_id", inv.GetRequestId(), "err", err)
		return failure(callcode.BadAnswer, "the node's answer was unusable: %v", err)
	}
}

// checkManifest refuses a call the node does not offer, before it is
// sent.
func checkManifest(caps []*nodev1.Capability, name string, id identity.DeviceID) *nodev1.Result {
	for _, c := range caps {
		if c.GetName() != name {
			continue
		}
		if !c.GetEnabled() {
			return failure(callcode.Disabled, "%s is turned off on node %s", name, id)
		}
		return nil
	}
	return failure(callcode.UnknownCapability, "node %s has no capability named %s", id, name)
}

func failure(code, format string, args ...any) *nodev1.Result {
	return &nodev1.Result{ErrorCode: code, ErrorMessage: fmt.Sprintf(format, args...)}
}

// queue stores the call for the offline node and waits for its result,
// until the queue TTL plus the call's timeout has passed or ctx ends (the
// call stays queued then).
func (d *Dispatcher) queue(ctx context.Context, req Request, inv *nodev1.Invoke, now time.Time) (*nodev1.Result, error) {
	wait, stop := d.wait(inv.GetRequestId())
	defer stop()
	err := d.cfg.Store.QueueInvocation(ctx, store.Invocation{
		RequestID:  inv.GetRequestId(),
		DeviceID:   req.DeviceID,
		Capability: req.Capability,
		Args:       req.Args,
		Caller:     req.Caller,
		CreatedAt:  now,
		// The store refuses a result after ExpiresAt: leave room for a
		// delivery that starts at the end of the TTL.
		ExpiresAt: now.Add(req.QueueTTL + req.Timeout),
		Timeout:   req.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("queueing the call: %w", err)
	}
	d.log.Info("call queued for offline node", "device", req.DeviceID, "request_id", inv.GetRequestId(), "ttl", req.QueueTTL)
	d.publish(events.Event{
		DeviceID:   req.DeviceID,
		Kind:       events.KindInvocation,
		Capability: req.Capability,
		RequestID:  inv.GetRequestId(),
		Message:    fmt.Sprintf("queued for up to %v until the node is online", req.QueueTTL),
	})
	// The node may have come online while the call was being queued.
	d.drain(req.DeviceID)
	timer := time.NewTimer(req.QueueTTL + req.Timeout)
	defer timer.Stop()
	// With other gateways, the node may come back through one of them.
	look, stopLooking := d.remoteLooks()
	defer stopLooking()
	for {
		select {
		case res := <-wait:
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return failure(callcode.Expired, "node %s did not come online within %v", req.DeviceID, req.QueueTTL), nil
		case <-look:
			if res := d.recorded(ctx, inv.GetRequestId()); res != nil {
				return res, nil
			}
		}
	}
}

// remoteResultPoll is how often a caller waiting for a queued call looks
// for a result another gateway of the database recorded.
const remoteResultPoll = time.Second

// recorded returns the result the store has for the queued call requestID
// once it has ended, or nil.
func (d *Dispatcher) recorded(ctx context.Context, requestID string) *nodev1.Result {
	inv, err := d.cfg.Store.GetInvocation(ctx, requestID)
	if err != nil || inv.State.Pending() || len(inv.Result) == 0 {
		return nil
	}
	var res nodev1.Result
	if err := proto.Unmarshal(inv.Result, &res); err != nil {
		d.log.Error("reading a queued call's recorded result", "request_id", requestID, "err", err)
		return nil
	}
	return &res
}

// drain delivers the device's queued calls, oldest first, one at a time,
// in the background. It stops when the node goes away; what was not
// answered is delivered again on the next attach.
func (d *Dispatcher) drain(id identity.DeviceID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, running := d.draining[id]; running {
		// The running drain may be past the point of seeing what prompted
		// this call (a new session, a new queued call): make it look again.
		st.again = true
		return
	}
	if n := d.nodes[id]; n == nil || n.carrier == nil {
		return
	}
	st := &drainState{}
	d.draining[id] = st
	go func() {
		for {
			more := d.drainOnce(id)
			d.mu.Lock()
			n := d.nodes[id]
			if (!more && !st.again) || n == nil || n.carrier == nil {
				// Offline: the next Attach drains again.
				delete(d.draining, id)
				d.mu.Unlock()
				return
			}
			st.again = false
			d.mu.Unlock()
		}
	}()
}

// drainState is a running drain of one device's queue.
type drainState struct {
	// again asks the drain to look at the queue once more before it ends.
	again bool
}

// drainOnce delivers what is pending now; it reports whether to look again
// (new calls may have been queued meanwhile).
func (d *Dispatcher) drainOnce(id identity.DeviceID) bool {
	ctx := context.Background()
	pending, err := d.cfg.Store.PendingInvocations(ctx, id, d.cfg.Now())
	if err != nil {
		d.log.Error("reading queued calls", "device", id, "err", err)
		return false
	}
	if len(pending) == 0 {
		return false
	}
	for _, q := range pending {
		n := d.reachable(id)
		if n == nil {
			return false
		}
		if !d.deliver(id, n, q) {
			return false
		}
	}
	return true
}

// errCancelled ends the delivery of a call an admin cancelled; the node is
// told it as the reason.
var errCancelled = errors.New("cancelled by an admin")

// deliver sends the queued call q to the node n and records its result;
// it reports false when the drain should stop (the node went away, the
// store is failing).
func (d *Dispatcher) deliver(id identity.DeviceID, n *attached, q store.Invocation) bool {
	// Cancel ends the delivery from the moment it is marked delivered:
	// registered first, so that no cancel falls between the two.
	ctx, end := context.WithCancelCause(context.Background())
	d.mu.Lock()
	d.delivering[q.RequestID] = end
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.delivering, q.RequestID)
		d.mu.Unlock()
		end(nil)
	}()
	if _, err := d.cfg.Store.MarkDelivered(ctx, q.RequestID, d.cfg.Now()); err != nil {
		if errors.Is(err, store.ErrIllegalTransition) {
			// It expired, was cancelled, or a result came meanwhile.
			return true
		}
		// The store is failing: try again on the next attach rather
		// than spin.
		d.log.Error("marking a queued call delivered", "request_id", q.RequestID, "err", err)
		return false
	}
	inv := &nodev1.Invoke{RequestId: q.RequestID, Capability: q.Capability, ArgsJson: q.Args, Caller: q.Caller}
	res := d.send(ctx, id, n, inv, q.Timeout, nil)
	if errors.Is(context.Cause(ctx), errCancelled) {
		// Cancel recorded it and told those waiting; the node was sent
		// Cancel if the call had reached it.
		return true
	}
	if code := res.GetErrorCode(); code == callcode.Offline || code == callcode.NodeGone {
		return false // delivered again on the next attach
	}
	d.done(n.transport, res, q.CreatedAt)
	d.finish(id, inv, res)
	return true
}

// finish records a queued call's result and hands it to its caller.
func (d *Dispatcher) finish(id identity.DeviceID, inv *nodev1.Invoke, res *nodev1.Result) {
	b, err := proto.Marshal(res)
	if err == nil {
		err = d.cfg.Store.FinishInvocation(context.Background(), inv.GetRequestId(), b, res.GetOk(), d.cfg.Now())
	}
	if errors.Is(err, store.ErrIllegalTransition) {
		// It was cancelled or expired meanwhile, and those waiting were
		// told so: this result is discarded.
		d.log.Info("discarding the result of a queued call that ended meanwhile", "request_id", inv.GetRequestId(), "err", err)
		return
	}
	if err != nil {
		d.log.Error("recording a queued call's result", "request_id", inv.GetRequestId(), "err", err)
	}
	d.publishCall(id, inv, res)
	d.notify(inv.GetRequestId(), res)
}

// wait registers a waiter for the outcome of the queued call requestID;
// stop unregisters it.
func (d *Dispatcher) wait(requestID string) (<-chan *nodev1.Result, func()) {
	ch := make(chan *nodev1.Result, 1)
	d.mu.Lock()
	d.waiters[requestID] = append(d.waiters[requestID], ch)
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		list := d.waiters[requestID]
		for i, c := range list {
			if c == ch {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(d.waiters, requestID)
		} else {
			d.waiters[requestID] = list
		}
	}
}

// notify hands the outcome of the queued call requestID to all who wait.
func (d *Dispatcher) notify(requestID string, res *nodev1.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ch := range d.waiters[requestID] {
		select {
		case ch <- res:
		default:
		}
	}
}

// Await waits until the queued call requestID has ended (a result came, it
// was cancelled, or its time ran out) or ctx ends, and returns it as the
// store has it then; with ctx's error if ctx ended first. One whose time
// ran out may still say queued or delivered (until the sweeper marks it
// expired): its ExpiresAt has passed. An unknown request ID gives an error
// wrapping store.ErrNotFound.
func (d *Dispatcher) Await(ctx context.Context, requestID string) (store.Invocation, error) {
	ended, stop := d.wait(requestID)
	defer stop()
	// Read after registering: an outcome that lands in between is not
	// missed.
	inv, err := d.cfg.Store.GetInvocation(ctx, requestID)
	if err != nil {
		return store.Invocation{}, err
	}
	left := inv.ExpiresAt.Sub(d.cfg.Now())
	if !inv.State.Pending() || left <= 0 {
		return inv, nil
	}
	timer := time.NewTimer(left)
	defer timer.Stop()
	look, stopLooking := d.remoteLooks()
	defer stopLooking()
	for {
		select {
		case <-ended:
		case <-timer.C:
		case <-ctx.Done():
			return inv, ctx.Err()
		case <-look:
			// Another gateway may have delivered it, without telling
			// this one.
			now, err := d.cfg.Store.GetInvocation(ctx, requestID)
			if err != nil || now.State.Pending() {
				continue
			}
			return now, nil
		}
		return d.cfg.Store.GetInvocation(context.WithoutCancel(ctx), requestID)
	}
}

// remoteLooks ticks every remoteResultPoll, until stop, while this
// gateway shares its store with others: they record the results of the
// queued calls they deliver without telling this one, so a wait for one
// looks at the store now and then. On a gateway of its own it never ticks.
func (d *Dispatcher) remoteLooks() (look <-chan time.Time, stop func()) {
	if d.cfg.Remote == nil {
		return nil, func() {}
	}
	t := time.NewTicker(remoteResultPoll)
	return t.C, t.Stop
}

// Cancel cancels the queued call requestID, which has not ended: it is not
// delivered (again), its caller and Await's are told it was cancelled, and
// a result that comes after is discarded. A call being delivered is
// stopped: its node is sent Cancel, and ends the capability's run (what
// it did already stays done). Cancel returns the state the call had and
// the cancelled call. A call that has ended gives an error wrapping
// store.ErrIllegalTransition, an unknown one store.ErrNotFound.
func (d *Dispatcher) Cancel(ctx context.Context, requestID string) (store.InvocationState, store.Invocation, error) {
	res := failure(callcode.Canceled, "the call was cancelled by an admin")
	res.RequestId = requestID
	b, err := proto.Marshal(res)
	if err != nil {
		return "", store.Invocation{}, fmt.Errorf("cancelling call %s: %w", requestID, err)
	}
	was, inv, err := d.cfg.Store.CancelInvocation(ctx, requestID, b, d.cfg.Now())
	if err != nil {
		return "", store.Invocation{}, err
	}
	d.mu.Lock()
	end := d.delivering[requestID]
	d.mu.Unlock()
	if end != nil {
		end(errCancelled)
	}
	d.log.Info("queued call cancelled", "device", inv.DeviceID, "request_id", requestID, "was", was)
	d.publishCall(inv.DeviceID, &nodev1.Invoke{RequestId: requestID, Capability: inv.Capability}, res)
	d.notify(requestID, res)
	return was, inv, nil
}

// done reports a finished call to Config.Done.
func (d *Dispatcher) done(transport string, res *nodev1.Result, start time.Time) {
	if d.cfg.Done == nil {
		return
	}
	outcome := "ok"
	if !res.GetOk() {
		outcome = res.GetErrorCode()
	}
	d.cfg.Done(transport, outcome, d.cfg.Now().Sub(start))
}

// audit records a direct call in the audit log and the events.
func (d *Dispatcher) audit(id identity.DeviceID, inv *nodev1.Invoke, res *nodev1.Result) {
	kind := store.AuditInvocationCompleted
	detail := "ok"
	if !res.GetOk() {
		kind, detail = store.AuditInvocationFailed, res.GetErrorCode()+": "+res.GetErrorMessage()
	}
	e := store.AuditEvent{
		At:        d.cfg.Now(),
		Kind:      kind,
		DeviceID:  id,
		RequestID: inv.GetRequestId(),
		Detail:    inv.GetCapability() + " " + detail,
	}
	d.publishCall(id, inv, res)
	if d.cfg.Audit != nil {
		d.cfg.Audit(e)
		return
	}
	if err := d.cfg.Store.Audit(context.Background(), e); err != nil {
		d.log.Error("writing the audit log", "err", err)
	}
}

func (d *Dispatcher) publishCall(id identity.DeviceID, inv *nodev1.Invoke, res *nodev1.Result) {
	msg := "ok"
	if !res.GetOk() {
		msg = res.GetErrorCode() + ": " + res.GetErrorMessage()
	}
	d.publish(events.Event{DeviceID: id, Kind: events.KindInvocation, Capability: inv.GetCapability(), RequestID: inv.GetRequestId(), Message: msg})
}

func (d *Dispatcher) publish(e events.Event) {
	if e.Time.IsZero() {
		e.Time = d.cfg.Now()
	}
	d.cfg.Events.Publish(e)
}
