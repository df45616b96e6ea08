package carrier

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Config configures a Registry.
type Config struct {
	// Runtime is told about sessions coming and going. Required.
	Runtime Runtime
	// Authenticate verifies a client's certificates (leaf first) and returns
	// the device ID; it must refuse revoked devices with an error wrapping
	// identity.ErrRevoked. The carriers call it for every connection or
	// RPC, and Attach again under the device's lock. Required.
	Authenticate func(rawCerts [][]byte) (identity.DeviceID, error)
	// Refused, if set, hears of every connection or RPC whose certificate
	// Authenticate refused, with the client's address (Refuse).
	Refused func(remote net.Addr, err error)
	// MaxAdmitting bounds the registrations in progress (from a node's
	// RegisterNode, once its handshake is done, to its Welcome); past it
	// a node is answered busy, with a wait drawn from [AdmitRetryMin,
	// AdmitRetryMax], rather than left to time out in the queue for the
	// store (Admit). The handshakes before are bounded by the QUIC
	// carrier's own cap. 0: no bound.
	MaxAdmitting int
	// Deferred, if set, hears of each node Admit answered busy (metrics).
	Deferred func()
	// Now is the clock for the timestamps the runtime and nodes see; nil
	// means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Session is one authenticated session of a device on a carrier, as the
// Registry knows it. The carrier fills in the exported fields before Track
// and keeps its wire state in its own type, which Conn points to.
type Session struct {
	ID        identity.DeviceID
	Transport string
	RawCerts  [][]byte
	Remote    string
	// Conn is the carrier's own state for the session, for its Invoke.
	Conn any
	// Close ends the session on the wire with the end the Registry
	// recorded. It is called once, outside the Registry's lock.
	Close func(End)

	// Guarded by Registry.mu.
	info  SessionInfo
	epoch uint64
	end   *End
	// calls counts the calls sent on the session that have not finished
	// (BeginCall).
	calls int
	// drain is set while a replaced session waits for its calls before it
	// is closed; its timer is the backstop (replacedDrainLimit).
	drain *time.Timer
}

// replacedDrainLimit bounds how long a replaced session stays open for its
// calls in flight. Each call is bounded by its own deadline (at most the
// dispatcher's longest timeout, ten minutes); the limit only keeps a call
// that never ends from holding the old session forever.
const replacedDrainLimit = 10 * time.Minute

// Registry is the gateway's one table of live node sessions, shared by
// both carriers. It is safe for concurrent use.
type Registry struct {
	cfg Config
	log *slog.Logger

	// devices serializes, per device, the runtime's presence calls
	// (NodeRegistered, NodeReady, NodeGone) with the changes of current
	// they go with, so that for one device they arrive in order. Devices
	// do not wait for each other: NodeRegistered writes to the store, and
	// one lock for all would make a storm of reconnects as slow as its
	// writes one after the other. A device's lock is taken before mu.
	devices deviceLocks

	// mu guards the fields below it and every session's info, epoch and
	// end.
	mu sync.Mutex
	// tracked holds every authenticated session, attached or not.
	tracked map[*Session]struct{}
	// current maps a device to its current (attached) session.
	current map[identity.DeviceID]*Session
	// epochs counts attaches.
	epochs uint64
	// closing holds the transports that are shutting down.
	closing map[string]bool
	// notRestarting: the coming shutdown gives no window (NotRestarting).
	notRestarting bool
	// forget is told the devices Disconnect closes, so a carrier can drop
	// what it holds for them outside sessions.
	forget []func(identity.DeviceID)

	// admitting counts the nodes Admit let in that are not registered
	// yet.
	admitting atomic.Int64
}

// The range of the wait a node refused by MaxAdmitting is asked for, drawn
// to the millisecond so that the nodes of a storm come back spread over
// it: at the cost BenchmarkConnect measures (ReconnectWindow), two cores
// admit about a thousand nodes a second, so nine seconds spread the ten
// thousand of a big gateway's storm.
const (
	AdmitRetryMin = time.Second
	AdmitRetryMax = 10 * time.Second
)

// ErrAdmission is the cause in the *BusyError Admit refuses with.
var ErrAdmission = errors.New("too many nodes connecting at once")

// Admit takes a slot for a node that is connecting, until release is
// called (at the end of its registration, or of its attempt; more calls
// do nothing). With MaxAdmitting slots taken it returns a *BusyError
// instead, asking the node to retry within the jitter window.
func (r *Registry) Admit() (release func(), err error) {
	if r.cfg.MaxAdmitting <= 0 {
		return func() {}, nil
	}
	if r.admitting.Add(1) > int64(r.cfg.MaxAdmitting) {
		r.admitting.Add(-1)
		if r.cfg.Deferred != nil {
			r.cfg.Deferred()
		}
		lo, hi := AdmitRetryMin.Milliseconds(), AdmitRetryMax.Milliseconds()
		return nil, &BusyError{RetryAfter: time.Duration(lo+rand.Int64N(hi-lo+1)) * time.Millisecond, Err: ErrAdmission}
	}
	return sync.OnceFunc(func() { r.admitting.Add(-1) }), nil
}

// Admitting is how many nodes are being admitted now.
func (r *Registry) Admitting() int { return int(r.admitting.Load()) }

// ErrEnded is returned by Attach for a session that was ended before it
// could become current.
var ErrEnded = errors.New("session ended before it was attached")

// NewRegistry checks cfg and returns an empty Registry.
func NewRegistry(cfg Config) (*Registry, error) {
	switch {
	case cfg.Runtime == nil:
		return nil, errors.New("carrier: Config.Runtime is required")
	case cfg.Authenticate == nil:
		return nil, errors.New("carrier: Config.Authenticate is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		cfg:     cfg,
		log:     cfg.Logger,
		tracked: make(map[*Session]struct{}),
		current: make(map[identity.DeviceID]*Session),
		closing: make(map[string]bool),
	}, nil
}

// Runtime is the runtime the Registry tells about sessions.
func (r *Registry) Runtime() Runtime { return r.cfg.Runtime }

// Authenticate runs Config.Authenticate.
func (r *Registry) Authenticate(rawCerts [][]byte) (identity.DeviceID, error) {
	return r.cfg.Authenticate(rawCerts)
}

// Refuse tells Config.Refused that Authenticate refused the certificate of
// a connection or RPC from remote. The carriers call it where they refuse
// one (not when Attach authenticates a session again).
func (r *Registry) Refuse(remote net.Addr, err error) {
	if r.cfg.Refused != nil {
		r.cfg.Refused(remote, err)
	}
}

// Now is the Registry's clock.
func (r *Registry) Now() time.Time { return r.cfg.Now() }

// OnDisconnect adds f to what Disconnect calls for the device it closes.
func (r *Registry) OnDisconnect(f func(identity.DeviceID)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forget = append(r.forget, f)
}

// Track adds an authenticated session; it reports false, and the carrier
// must refuse the session, while s's transport is shutting down.
func (r *Registry) Track(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing[s.Transport] {
		return false
	}
	r.tracked[s] = struct{}{}
	return true
}

// ShuttingDown reports whether Shutdown has run for transport.
func (r *Registry) ShuttingDown(transport string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing[transport]
}

// ErrShuttingDown is returned by Register while the transport is shutting
// down.
var ErrShuttingDown = errors.New("the carrier is shutting down")

// Register tells the runtime NodeRegistered for info under the device's
// lock, for a carrier that registers a node apart from attaching its
// session; keep, if the runtime accepts, runs under the same lock. It
// refuses with ErrShuttingDown while info's transport is shutting down.
func (r *Registry) Register(ctx context.Context, info SessionInfo, keep func()) error {
	defer r.devices.lock(info.DeviceID)()
	if r.ShuttingDown(info.Transport) {
		return ErrShuttingDown
	}
	if err := r.cfg.Runtime.NodeRegistered(ctx, info); err != nil {
		return err
	}
	keep()
	return nil
}

// Attach is where a session becomes its device's current session, on
// either carrier. Under the device's lock (devices register at the same
// time; only sessions of one device wait for each other) it authenticates
// s again (the
// device may have been revoked since its handshake, and Disconnect may have
// missed it), refuses s if it has ended, and runs register, the carrier's
// own step (telling the runtime NodeRegistered, or taking a pending
// registration), which returns the session's registration. Then s takes a
// fresh epoch and becomes current, and the session it replaces is closed
// with EndReplaced: at once if no call is in flight on it, otherwise once
// those calls finished (BeginCall), so that a node moving to another
// carrier loses none. New calls go to s from now on.
//
// An Authenticate or register error is returned as it is. ErrEnded means s
// was ended first; if it ended while register ran and the device has no
// current session, the runtime hears NodeGone for the registration.
func (r *Registry) Attach(s *Session, register func() (SessionInfo, error)) error {
	var replaced *Session
	defer func() {
		// Closing waits for the connection; the device's lock need not.
		if replaced != nil {
			r.closeWhenIdle(replaced)
		}
	}()
	unlock := r.devices.lock(s.ID)
	defer unlock()
	if _, err := r.cfg.Authenticate(s.RawCerts); err != nil {
		return err
	}
	if _, ended := r.Ended(s); ended {
		return ErrEnded
	}
	info, err := register()
	r.mu.Lock()
	if s.end != nil {
		// Closed (say, by Disconnect) while register ran.
		reason, undo := s.end.Reason, err == nil && r.current[s.ID] == nil
		r.mu.Unlock()
		if undo {
			r.cfg.Runtime.NodeGone(info, r.cfg.Now(), reason)
		}
		return ErrEnded
	}
	if err != nil {
		r.mu.Unlock()
		return err
	}
	r.epochs++
	info.Epoch = r.epochs
	s.info, s.epoch = info, r.epochs
	old := r.current[s.ID]
	r.current[s.ID] = s
	if old != nil && old.endLocked(End{Kind: EndReplaced, Message: ReplacedMessage, Reason: replacedReason}) {
		replaced = old
	}
	r.mu.Unlock()
	if replaced != nil {
		r.log.Info("node session replaced", "device", s.ID, "old", old.Remote, "old_transport", old.Transport, "new", s.Remote, "new_transport", s.Transport)
	}
	return nil
}

// closeWhenIdle closes s, which was ended as replaced, once no call is in
// flight on it, or after replacedDrainLimit.
func (r *Registry) closeWhenIdle(s *Session) {
	r.mu.Lock()
	if s.calls > 0 {
		s.drain = time.AfterFunc(replacedDrainLimit, func() { r.stopDraining(s) })
		n := s.calls
		r.mu.Unlock()
		r.log.Info("replaced session stays open for its calls in flight", "device", s.ID, "transport", s.Transport, "calls", n)
		return
	}
	r.mu.Unlock()
	s.Close(*s.end)
}

// stopDraining closes s if it is waiting for its calls.
func (r *Registry) stopDraining(s *Session) {
	r.mu.Lock()
	draining := s.stopDrainLocked()
	r.mu.Unlock()
	if draining {
		s.Close(*s.end)
	}
}

// stopDrainLocked ends s's wait for its calls and reports whether it was
// waiting; the caller then closes it. r.mu must be held.
func (s *Session) stopDrainLocked() bool {
	if s.drain == nil {
		return false
	}
	s.drain.Stop()
	s.drain = nil
	return true
}

// BeginCall counts a call about to be sent on s, until the returned done
// is called (once, when the call has its result or gave up). It reports
// false, and the call must not be sent on s, when s has ended, say because
// a newer session replaced it.
func (r *Registry) BeginCall(s *Session) (done func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.beginCallLocked(s)
}

// beginCallLocked is BeginCall with r.mu held.
func (r *Registry) beginCallLocked(s *Session) (done func(), ok bool) {
	if s.end != nil {
		return nil, false
	}
	s.calls++
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			s.calls--
			closeNow := s.calls == 0 && s.stopDrainLocked()
			r.mu.Unlock()
			if closeNow {
				s.Close(*s.end)
			}
		})
	}, true
}

// Ready tells the runtime NodeReady for s, if s is still its device's
// current session with the epoch it was attached with and has not ended; it
// reports whether it did. A session that ended after Attach is not made
// reachable.
func (r *Registry) Ready(s *Session) bool {
	defer r.devices.lock(s.ID)()
	r.mu.Lock()
	cur := r.current[s.ID]
	ok := cur == s && cur.epoch == s.epoch && s.end == nil
	info := s.info
	r.mu.Unlock()
	if ok {
		r.cfg.Runtime.NodeReady(info)
	}
	return ok
}

// Detach removes s once its carrier is done with it, and returns why it
// ended: the reason of the End it was closed with, or else fallback. Only
// the session with its device's current epoch removes the device, and then
// the runtime hears NodeGone; an older session's Detach changes nothing
// else.
func (r *Registry) Detach(s *Session, fallback string) string {
	defer r.devices.lock(s.ID)()
	r.mu.Lock()
	delete(r.tracked, s)
	// The wire is done with s: a wait for its calls has nothing to close.
	s.stopDrainLocked()
	reason := fallback
	if s.end != nil {
		reason = s.end.Reason
	}
	cur := r.current[s.ID]
	current := cur == s && cur.epoch == s.epoch
	if current {
		delete(r.current, s.ID)
	}
	info := s.info
	r.mu.Unlock()
	if current {
		r.log.Info("node gone", "device", s.ID, "transport", s.Transport, "reason", reason)
		r.cfg.Runtime.NodeGone(info, r.cfg.Now(), reason)
	}
	return reason
}

// Disconnect is where the sessions of a revoked or removed device are
// closed: every tracked session of device id, attached or not, on every
// carrier, ends at once with EndRevoked. It returns how many it closed;
// the runtime hears NodeGone with reason ("device revoked" if empty) when
// the current one is detached. It takes no device's lock, so the runtime
// may call it from its callbacks.
func (r *Registry) Disconnect(id identity.DeviceID, reason string) int {
	if reason == "" {
		reason = RevokedReason
	}
	r.mu.Lock()
	forget := r.forget
	closed := r.endMatchingLocked(func(s *Session) bool { return s.ID == id }, End{Kind: EndRevoked, Message: reason, Reason: reason})
	r.mu.Unlock()
	for _, f := range forget {
		f(id)
	}
	return closeAll(closed)
}

// Shutdown refuses new sessions of transport and ends its tracked ones
// with EndShutdown, asking their nodes to come back within
// ReconnectWindow of every session the gateway holds (they all come back
// to the next gateway). The sessions are closed at once, each on its own
// goroutine: a carrier's Close may wait a moment for its node to hear the
// window. It returns how many it ended, once they are closed.
func (r *Registry) Shutdown(transport string) int {
	r.mu.Lock()
	r.closing[transport] = true
	within := ReconnectWindow(len(r.tracked))
	if r.notRestarting {
		within = 0
	}
	closed := r.endMatchingLocked(func(s *Session) bool { return s.Transport == transport },
		End{Kind: EndShutdown, Message: ShutdownMessage, Reason: ShutdownMessage, ReconnectWithin: within})
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range closed {
		wg.Go(func() { s.Close(*s.end) })
	}
	wg.Wait()
	return len(closed)
}

// NotRestarting says the coming shutdown is for good: the sessions
// Shutdown ends get no window to come back within (no GoAway), so their
// nodes back off as from any gateway that went away, rather than dial
// again at once, for the window and after it, a gateway that is not
// coming back.
func (r *Registry) NotRestarting() {
	r.mu.Lock()
	r.notRestarting = true
	r.mu.Unlock()
}

// endMatchingLocked ends the tracked sessions match selects and returns
// them, to be closed outside the lock. r.mu must be held.
func (r *Registry) endMatchingLocked(match func(*Session) bool, e End) []*Session {
	var closed []*Session
	for s := range r.tracked {
		// A replaced session waiting for its calls is closed now too.
		if match(s) && (s.endLocked(e) || s.stopDrainLocked()) {
			closed = append(closed, s)
		}
	}
	return closed
}

func closeAll(sessions []*Session) int {
	for _, s := range sessions {
		s.Close(*s.end)
	}
	return len(sessions)
}

// End ends s with e unless it was ended already, and reports whether this
// call ended it.
func (r *Registry) End(s *Session, e End) bool {
	r.mu.Lock()
	marked := s.endLocked(e)
	r.mu.Unlock()
	if marked {
		s.Close(e)
	}
	return marked
}

// endLocked records e as s's end, unless s has one; r.mu must be held.
func (s *Session) endLocked(e End) bool {
	if s.end != nil {
		return false
	}
	s.end = &e
	return true
}

// Ended returns how s was ended, if it was.
func (r *Registry) Ended(s *Session) (End, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.end == nil {
		return End{}, false
	}
	return *s.end, true
}

// Current returns device id's current session, or nil.
func (r *Registry) Current(id identity.DeviceID) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current[id]
}

// Info returns s's registration, as Attach recorded it.
func (r *Registry) Info(s *Session) SessionInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return s.info
}

// SetCapabilities records the manifest s's node sent and tells the
// runtime.
func (r *Registry) SetCapabilities(s *Session, caps []*nodev1.Capability) {
	r.mu.Lock()
	s.info.Capabilities = caps
	r.mu.Unlock()
	r.cfg.Runtime.CapabilitiesChanged(s.ID, caps)
}

// Sessions returns the current sessions, of every carrier.
func (r *Registry) Sessions() []SessionInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]SessionInfo, 0, len(r.current))
	for _, s := range r.current {
		out = append(out, s.info)
	}
	return out
}

// Count is how many devices have a current session.
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.current)
}

// deviceLocks is a mutex per device, held only while someone holds or
// waits for it, so the table stays as small as the registrations in
// progress.
type deviceLocks struct {
	mu    sync.Mutex
	locks map[identity.DeviceID]*deviceLock
}

type deviceLock struct {
	mu sync.Mutex
	// refs counts the holder and the waiters; guarded by deviceLocks.mu.
	refs int
}

// lock takes device id's lock and returns its unlock.
func (d *deviceLocks) lock(id identity.DeviceID) (unlock func()) {
	d.mu.Lock()
	if d.locks == nil {
		d.locks = make(map[identity.DeviceID]*deviceLock)
	}
	l := d.locks[id]
	if l == nil {
		l = &deviceLock{}
		d.locks[id] = l
	}
	l.refs++
	d.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		d.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(d.locks, id)
		}
		d.mu.Unlock()
	}
}

// held is how many devices' locks are held or waited for (for tests).
func (d *deviceLocks) held() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.locks)
}

// StartCall finds device id's current session for a carrier's Invoke:
// its Conn must be a T that mine accepts (a carrier uses only its own
// sessions). It counts the call on the session as BeginCall does, and
// returns the Conn with the done to call when the call is over; without
// a session it returns ErrNodeOffline, and ErrNodeMoved when the current
// session is another carrier's. mine runs under the Registry's lock: it
// must not call the Registry.
func StartCall[T any](r *Registry, id identity.DeviceID, mine func(T) bool) (T, func(), error) {
	var zero T
	// The lookup and the count under one lock: a call takes it here and
	// when it is done, not once more in between.
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.current[id]
	if s == nil {
		return zero, nil, ErrNodeOffline
	}
	c, ok := s.Conn.(T)
	if !ok || !mine(c) {
		return zero, nil, ErrNodeMoved
	}
	done, ok := r.beginCallLocked(s)
	if !ok {
		return zero, nil, ErrNodeOffline
	}
	return c, done, nil
}
