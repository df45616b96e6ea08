package carrier_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

const waitTimeout = 5 * time.Second

// table is a Registry whose sessions are fakes: a session's "certificate"
// is its device ID, and its Close records the end it was given.
type table struct {
	t       *testing.T
	rt      *testregistry.Registry
	reg     *carrier.Registry
	revoked sync.Map // identity.DeviceID -> bool
}

func newTable(t *testing.T) *table {
	tb := &table{t: t, rt: testregistry.New(nil)}
	reg, err := carrier.NewRegistry(carrier.Config{Runtime: tb.rt, Authenticate: tb.authenticate})
	if err != nil {
		t.Fatal(err)
	}
	tb.reg = reg
	return tb
}

func (tb *table) authenticate(raw [][]byte) (identity.DeviceID, error) {
	var id identity.DeviceID
	copy(id[:], raw[0])
	if _, ok := tb.revoked.Load(id); ok {
		return id, fmt.Errorf("device %s: %w", id, identity.ErrRevoked)
	}
	return id, nil
}

// fake is a session and the ends its Close was called with.
type fake struct {
	*carrier.Session
	ends chan carrier.End
}

func device(n byte) identity.DeviceID {
	var id identity.DeviceID
	id[0] = n
	return id
}

// track makes a tracked session of device id over transport.
func (tb *table) track(id identity.DeviceID, transport string) *fake {
	tb.t.Helper()
	f := &fake{ends: make(chan carrier.End, 2)}
	f.Session = &carrier.Session{
		ID:        id,
		Transport: transport,
		RawCerts:  [][]byte{id[:]},
		Remote:    fmt.Sprintf("%s-%p", transport, f),
		Close:     func(e carrier.End) { f.ends <- e },
	}
	if !tb.reg.Track(f.Session) {
		tb.t.Fatal("Track refused the session")
	}
	return f
}

// attach tracks and attaches a session, registering it as a QUIC session
// does, and makes it ready.
func (tb *table) attach(id identity.DeviceID, transport string) *fake {
	tb.t.Helper()
	f := tb.track(id, transport)
	info := carrier.SessionInfo{DeviceID: id, Transport: transport, RemoteAddr: f.Remote}
	err := tb.reg.Attach(f.Session, func() (carrier.SessionInfo, error) {
		return info, tb.rt.NodeRegistered(context.Background(), info)
	})
	if err != nil {
		tb.t.Fatalf("Attach: %v", err)
	}
	testwait.Recv(tb.t, tb.rt.Registered, waitTimeout, "NodeRegistered")
	if !tb.reg.Ready(f.Session) {
		tb.t.Fatal("Ready refused a current session")
	}
	testwait.Recv(tb.t, tb.rt.Ready, waitTimeout, "NodeReady")
	return f
}

func TestNewRegistryChecksConfig(t *testing.T) {
	t.Parallel()
	auth := func([][]byte) (identity.DeviceID, error) { return identity.DeviceID{}, nil }
	for name, cfg := range map[string]carrier.Config{
		"no Runtime":      {Authenticate: auth},
		"no Authenticate": {Runtime: testregistry.New(nil)},
	} {
		if _, err := carrier.NewRegistry(cfg); err == nil {
			t.Errorf("%s: NewRegistry accepted it", name)
		}
	}
}

func TestEpochsIncreasePerAttach(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	var last uint64
	for i, id := range []identity.DeviceID{device(1), device(2), device(1), device(1)} {
		f := tb.attach(id, wire.TransportQUIC)
		epoch := tb.reg.Info(f.Session).Epoch
		if epoch <= last {
			t.Errorf("attach %d: epoch %d after %d", i, epoch, last)
		}
		last = epoch
	}
	if n := tb.reg.Count(); n != 2 {
		t.Errorf("Count() = %d, want 2", n)
	}
	for _, s := range tb.reg.Sessions() {
		if s.Epoch == 0 {
			t.Errorf("Sessions() holds %+v without an epoch", s)
		}
	}
}

// A newer session replaces the older one, which is closed as replaced; the
// older one's Detach then neither removes the newer session nor tells the
// runtime the node is gone.
func TestReplaceAndStaleDetach(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	id := device(1)
	old := tb.attach(id, wire.TransportQUIC)
	cur := tb.attach(id, wire.TransportGRPC)
	e := testwait.Recv(t, old.ends, waitTimeout, "the old session's close")
	if e.Kind != carrier.EndReplaced || e.Message != carrier.ReplacedMessage {
		t.Errorf("old session ended with %+v, want EndReplaced %q", e, carrier.ReplacedMessage)
	}
	testwait.None(t, cur.ends, "close of the new session")

	tb.reg.Detach(old.Session, "node disconnected")
	testwait.None(t, tb.rt.Gone, "NodeGone for the replaced session")
	if got := tb.reg.Current(id); got != cur.Session {
		t.Fatalf("Current() after the old session's Detach = %v, want the new session", got)
	}
	if s := tb.reg.Sessions(); len(s) != 1 || s[0].Transport != wire.TransportGRPC {
		t.Errorf("Sessions() = %+v", s)
	}

	if reason := tb.reg.Detach(cur.Session, "node disconnected"); reason != "node disconnected" {
		t.Errorf("Detach = %q", reason)
	}
	if g := testwait.Recv(t, tb.rt.Gone, waitTimeout, "NodeGone"); g.ID != id || g.Reason != "node disconnected" {
		t.Errorf("NodeGone = %+v", g)
	}
	if tb.reg.Current(id) != nil || tb.reg.Count() != 0 {
		t.Error("the device is still current after its session's Detach")
	}
}

// A session replaced while calls run on it is closed only once they are
// done, and takes no new call meanwhile; Disconnect does not wait for them.
func TestReplacedSessionClosesAfterItsCalls(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	id := device(1)
	old := tb.attach(id, wire.TransportGRPC)
	first, ok := tb.reg.BeginCall(old.Session)
	if !ok {
		t.Fatal("BeginCall refused the current session")
	}
	second, _ := tb.reg.BeginCall(old.Session)
	cur := tb.attach(id, wire.TransportQUIC)
	if _, ok := tb.reg.BeginCall(old.Session); ok {
		t.Error("BeginCall accepted a call on the replaced session")
	}
	first()
	first() // done twice counts once
	testwait.None(t, old.ends, "close of the replaced session with a call in flight")
	second()
	if e := testwait.Recv(t, old.ends, waitTimeout, "the replaced session's close"); e.Kind != carrier.EndReplaced {
		t.Errorf("replaced session ended with %+v", e)
	}

	// Replaced again with a call running, then revoked: closed at once.
	call, _ := tb.reg.BeginCall(cur.Session)
	defer call()
	tb.attach(id, wire.TransportGRPC)
	testwait.None(t, cur.ends, "close of the replaced session with a call in flight")
	tb.reg.Disconnect(id, "")
	if e := testwait.Recv(t, cur.ends, waitTimeout, "the replaced session's close on Disconnect"); e.Kind != carrier.EndReplaced {
		t.Errorf("replaced session ended with %+v", e)
	}
}

// Disconnect closes every session of the device, attached or not, and no
// other device's.
func TestDisconnectClosesTheDevicesSessions(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	id, other := device(1), device(2)
	var forgotten []identity.DeviceID
	tb.reg.OnDisconnect(func(d identity.DeviceID) { forgotten = append(forgotten, d) })
	attached := tb.attach(id, wire.TransportQUIC)
	unattached := tb.track(id, wire.TransportGRPC)
	bystander := tb.attach(other, wire.TransportQUIC)

	if n := tb.reg.Disconnect(id, "revoked by test"); n != 2 {
		t.Errorf("Disconnect closed %d sessions, want 2", n)
	}
	for name, f := range map[string]*fake{"attached": attached, "unattached": unattached} {
		e := testwait.Recv(t, f.ends, waitTimeout, "the "+name+" session's close")
		if e.Kind != carrier.EndRevoked || e.Message != "revoked by test" || e.Reason != "revoked by test" {
			t.Errorf("%s session ended with %+v", name, e)
		}
	}
	testwait.None(t, bystander.ends, "close of another device's session")
	if len(forgotten) != 1 || forgotten[0] != id {
		t.Errorf("OnDisconnect heard %v", forgotten)
	}

	// The carriers detach their sessions once they have closed.
	if reason := tb.reg.Detach(attached.Session, "connection lost"); reason != "revoked by test" {
		t.Errorf("Detach = %q, want the end's reason", reason)
	}
	if g := testwait.Recv(t, tb.rt.Gone, waitTimeout, "NodeGone"); g.ID != id || g.Reason != "revoked by test" {
		t.Errorf("NodeGone = %+v", g)
	}
	tb.reg.Detach(unattached.Session, "connection lost")
	testwait.None(t, tb.rt.Gone, "NodeGone for a session never attached")
	if n := tb.reg.Disconnect(id, ""); n != 0 {
		t.Errorf("second Disconnect closed %d", n)
	}
	if got := tb.reg.Current(other); got != bystander.Session {
		t.Error("Disconnect removed another device's session")
	}
}

// A session that ended after Attach is not made ready.
// TestConcurrentAttachesLeaveNoGhost: sessions of a few devices attach at
// once, several per device. Per device the session attached last (the
// largest epoch) is the current one and every other is closed as
// replaced; once all detach, no device is current, the runtime heard
// NodeGone once per device, and no device's lock is left behind.
func TestConcurrentAttachesLeaveNoGhost(t *testing.T) {
	const devices, perDevice = 4, 8 // within testregistry's channel depth
	tb := newTable(t)
	sessions := make([]*fake, devices*perDevice)
	for i := range sessions {
		sessions[i] = tb.track(device(byte(i%devices+1)), wire.TransportQUIC)
	}
	var wg sync.WaitGroup
	for _, f := range sessions {
		wg.Go(func() {
			info := carrier.SessionInfo{DeviceID: f.ID, Transport: f.Transport, RemoteAddr: f.Remote}
			err := tb.reg.Attach(f.Session, func() (carrier.SessionInfo, error) {
				return info, tb.rt.NodeRegistered(context.Background(), info)
			})
			if err != nil {
				t.Errorf("Attach: %v", err)
			}
		})
	}
	wg.Wait()
	for d := range devices {
		id := device(byte(d + 1))
		cur := tb.reg.Current(id)
		if cur == nil {
			t.Fatalf("device %d has no current session", d+1)
		}
		var last *fake
		for _, f := range sessions {
			if f.ID == id && (last == nil || tb.reg.Info(f.Session).Epoch > tb.reg.Info(last.Session).Epoch) {
				last = f
			}
		}
		if cur != last.Session {
			t.Errorf("device %d: the current session is not the one attached last", d+1)
		}
		for _, f := range sessions {
			if f.ID != id || f == last {
				continue
			}
			if e := testwait.Recv(t, f.ends, waitTimeout, "a replaced session's close"); e.Kind != carrier.EndReplaced {
				t.Errorf("a replaced session was closed with %+v", e)
			}
		}
		testwait.None(t, last.ends, "the current session's close")
	}
	for _, f := range sessions {
		wg.Go(func() { tb.reg.Detach(f.Session, "node disconnected") })
	}
	wg.Wait()
	for range devices {
		testwait.Recv(t, tb.rt.Gone, waitTimeout, "NodeGone")
	}
	testwait.None(t, tb.rt.Gone, "NodeGone of a replaced session")
	if n := tb.reg.Count(); n != 0 {
		t.Errorf("%d devices still current after every session detached", n)
	}
	if n := tb.reg.DeviceLocks(); n != 0 {
		t.Errorf("%d device locks left behind", n)
	}
}

func TestReadyAfterDetach(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	f := tb.track(device(1), wire.TransportQUIC)
	info := carrier.SessionInfo{DeviceID: f.ID, Transport: f.Transport}
	if err := tb.reg.Attach(f.Session, func() (carrier.SessionInfo, error) { return info, nil }); err != nil {
		t.Fatal(err)
	}
	tb.reg.End(f.Session, carrier.End{Kind: carrier.EndLeaseExpired, Message: "lease expired", Reason: "lease expired"})
	tb.reg.Detach(f.Session, "")
	testwait.Recv(t, tb.rt.Gone, waitTimeout, "NodeGone")
	if tb.reg.Ready(f.Session) {
		t.Error("Ready accepted a detached session")
	}
	testwait.None(t, tb.rt.Ready, "NodeReady")
}

func TestAttachChecks(t *testing.T) {
	t.Parallel()
	// Authentication comes first, then an end that came before; register
	// runs after both.
	revoke := func(tb *table, f *fake) { tb.revoked.Store(f.ID, true) }
	end := func(tb *table, f *fake) { tb.reg.Disconnect(f.ID, "") }
	for name, tt := range map[string]struct {
		before []func(*table, *fake)
		want   error
	}{
		"revoked":           {[]func(*table, *fake){revoke}, identity.ErrRevoked},
		"already ended":     {[]func(*table, *fake){end}, carrier.ErrEnded},
		"revoked and ended": {[]func(*table, *fake){end, revoke}, identity.ErrRevoked},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tb := newTable(t)
			f := tb.track(device(1), wire.TransportGRPC)
			for _, b := range tt.before {
				b(tb, f)
			}
			err := tb.reg.Attach(f.Session, func() (carrier.SessionInfo, error) {
				t.Error("register ran")
				return carrier.SessionInfo{}, nil
			})
			if !errors.Is(err, tt.want) {
				t.Errorf("Attach = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("ended while registering", func(t *testing.T) {
		t.Parallel()
		tb := newTable(t)
		f := tb.track(device(1), wire.TransportQUIC)
		info := carrier.SessionInfo{DeviceID: f.ID, Transport: f.Transport}
		err := tb.reg.Attach(f.Session, func() (carrier.SessionInfo, error) {
			tb.reg.Disconnect(f.ID, "revoked meanwhile") // as the runtime may
			return info, nil
		})
		if !errors.Is(err, carrier.ErrEnded) {
			t.Errorf("Attach = %v, want ErrEnded", err)
		}
		// The runtime accepted the registration: it hears it undone.
		if g := testwait.Recv(t, tb.rt.Gone, waitTimeout, "NodeGone"); g.Reason != "revoked meanwhile" {
			t.Errorf("NodeGone = %+v", g)
		}
		if tb.reg.Current(f.ID) != nil {
			t.Error("an ended session became current")
		}
	})
	t.Run("register refuses", func(t *testing.T) {
		t.Parallel()
		tb := newTable(t)
		f := tb.track(device(1), wire.TransportQUIC)
		refused := errors.New("refused by test")
		err := tb.reg.Attach(f.Session, func() (carrier.SessionInfo, error) { return carrier.SessionInfo{}, refused })
		if !errors.Is(err, refused) || tb.reg.Current(f.ID) != nil {
			t.Errorf("Attach = %v, current %v", err, tb.reg.Current(f.ID))
		}
	})
}

// Shutdown ends one transport's sessions and refuses new ones of it.
func TestShutdownOneTransport(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	q := tb.attach(device(1), wire.TransportQUIC)
	g := tb.attach(device(2), wire.TransportGRPC)
	if n := tb.reg.Shutdown(wire.TransportGRPC); n != 1 {
		t.Errorf("Shutdown ended %d sessions, want 1", n)
	}
	if e := testwait.Recv(t, g.ends, waitTimeout, "the gRPC session's close"); e.Kind != carrier.EndShutdown || e.Reason != carrier.ShutdownMessage {
		t.Errorf("gRPC session ended with %+v", e)
	}
	testwait.None(t, q.ends, "close of the QUIC session")
	if tb.reg.Track(&carrier.Session{ID: device(3), Transport: wire.TransportGRPC}) {
		t.Error("Track accepted a session of a transport that is shutting down")
	}
	if !tb.reg.ShuttingDown(wire.TransportGRPC) || tb.reg.ShuttingDown(wire.TransportQUIC) {
		t.Error("ShuttingDown is wrong")
	}
	err := tb.reg.Register(context.Background(), carrier.SessionInfo{DeviceID: device(3), Transport: wire.TransportGRPC}, func() {
		t.Error("Register kept a registration while shutting down")
	})
	if !errors.Is(err, carrier.ErrShuttingDown) {
		t.Errorf("Register = %v, want ErrShuttingDown", err)
	}
	tb.attach(device(4), wire.TransportQUIC)
}

// A shutdown asks its nodes to come back within a window, unless the
// gateway is not restarting.
func TestShutdownWindow(t *testing.T) {
	t.Parallel()
	for _, restarting := range []bool{true, false} {
		tb := newTable(t)
		s := tb.attach(device(1), wire.TransportQUIC)
		if !restarting {
			tb.reg.NotRestarting()
		}
		tb.reg.Shutdown(wire.TransportQUIC)
		e := testwait.Recv(t, s.ends, waitTimeout, "the session's close")
		want := time.Duration(0)
		if restarting {
			want = carrier.ReconnectWindow(1)
		}
		if e.Kind != carrier.EndShutdown || e.ReconnectWithin != want {
			t.Errorf("restarting %t: the session ended with %+v, want a shutdown with a window of %v", restarting, e, want)
		}
	}
}

func TestSetCapabilities(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	f := tb.attach(device(1), wire.TransportQUIC)
	caps := []*nodev1.Capability{{Name: "test.echo", Enabled: true}}
	tb.reg.SetCapabilities(f.Session, caps)
	if got := testwait.Recv(t, tb.rt.Caps, waitTimeout, "CapabilitiesChanged"); len(got) != 1 {
		t.Errorf("CapabilitiesChanged(%v)", got)
	}
	if s := tb.reg.Sessions(); len(s) != 1 || len(s[0].Capabilities) != 1 || s[0].Capabilities[0].GetName() != "test.echo" {
		t.Errorf("Sessions() = %+v", s)
	}
}

// StartCall finds only the carrier's own current session, and counts the
// call on it like BeginCall.
func TestStartCall(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	id := device(1)
	mine := func(*fake) bool { return true }
	if _, _, err := carrier.StartCall(tb.reg, id, mine); !errors.Is(err, carrier.ErrNodeOffline) || errors.Is(err, carrier.ErrNodeMoved) {
		t.Errorf("StartCall with no session = %v, want ErrNodeOffline", err)
	}
	old := tb.attach(id, wire.TransportGRPC)
	old.Conn = old
	// The other carrier's session means the node moved: the caller may
	// retry on that carrier, and still sees an ErrNodeOffline if it does not.
	if _, _, err := carrier.StartCall(tb.reg, id, func(*fake) bool { return false }); !errors.Is(err, carrier.ErrNodeMoved) || !errors.Is(err, carrier.ErrNodeOffline) {
		t.Errorf("StartCall on another carrier's session = %v, want ErrNodeMoved", err)
	}
	if _, _, err := carrier.StartCall(tb.reg, id, func(*carrier.Session) bool { return true }); !errors.Is(err, carrier.ErrNodeMoved) {
		t.Errorf("StartCall on a Conn of another type = %v, want ErrNodeMoved", err)
	}
	got, done, err := carrier.StartCall(tb.reg, id, mine)
	if err != nil || got != old {
		t.Fatalf("StartCall = %v, %v; want the current session", got, err)
	}
	tb.attach(id, wire.TransportQUIC)
	testwait.None(t, old.ends, "close of the replaced session with a call in flight")
	done()
	if e := testwait.Recv(t, old.ends, waitTimeout, "the replaced session's close"); e.Kind != carrier.EndReplaced {
		t.Errorf("replaced session ended with %+v", e)
	}
}
