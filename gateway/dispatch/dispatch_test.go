package dispatch_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/callcode"
	"github.com/palyra/palyra-go/internal/testwait"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

var (
	errOffline = errors.New("test carrier: offline")
	errGone    = errors.New("test carrier: gone")
	errMoved   = fmt.Errorf("%w: its session moved", errOffline)
)

// carrier stands in for a transport (QUIC and gRPC have their own tests):
// it answers with answer, or blocks until ctx ends when answer is nil, and
// counts the calls that reached it.
type carrier struct {
	mu     sync.Mutex
	calls  []*nodev1.Invoke
	answer func(*nodev1.Invoke) (*nodev1.Result, error)
}

func (c *carrier) Invoke(ctx context.Context, _ identity.DeviceID, inv *nodev1.Invoke, _ func(*nodev1.Progress)) (*nodev1.Result, error) {
	c.mu.Lock()
	c.calls = append(c.calls, inv)
	answer := c.answer
	c.mu.Unlock()
	if answer == nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return answer(inv)
}

func (c *carrier) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

func ok(inv *nodev1.Invoke) (*nodev1.Result, error) {
	return &nodev1.Result{RequestId: inv.GetRequestId(), Ok: true, OutputJson: []byte(`{"done":true}`)}, nil
}

type fixture struct {
	store *store.Store
	d     *dispatch.Dispatcher
	hub   *events.Hub
	id    identity.DeviceID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "gateway.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fixture{store: s, hub: events.New()}
	f.d, err = dispatch.New(dispatch.Config{
		Store:   s,
		Events:  f.hub,
		Offline: func(err error) bool { return errors.Is(err, errOffline) },
		Gone:    func(err error) bool { return errors.Is(err, errGone) },
		Moved:   func(err error) bool { return errors.Is(err, errMoved) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.id = pairDevice(t, s)
	return f
}

// pairDevice records a paired device the way the pairing service does.
func pairDevice(t *testing.T, s *store.Store) identity.DeviceID {
	t.Helper()
	ctx, now := t.Context(), time.Now()
	code, err := pairing.NewCode(rand.Reader, "42")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateCode(ctx, store.Code{Selector: "42", PINSecret: code.PINSecret, LinkSecret: code.LinkSecret,
		AutoApprove: true, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	c, err := s.BeginAttempt(ctx, "42", now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := identity.NewCA(rand.Reader, "test", now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := key.CreateCSR(rand.Reader, "node")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.CompletePairing(ctx, c.ID, store.Request{DeviceID: key.ID(), PublicKey: key.Public(), Name: "node",
		CSR: csr, VerificationCode: "123 456", GrantKey: make([]byte, 32), CreatedAt: now, ExpiresAt: now.Add(time.Minute)}, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IssueCertificate(ctx, r.ID, store.Certificate{Serial: fmt.Sprintf("%x", cert.SerialNumber), DeviceID: key.ID(),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw}, now); err != nil {
		t.Fatal(err)
	}
	return key.ID()
}

var manifest = []*nodev1.Capability{
	{Name: "system.info", Enabled: true},
	{Name: "shell.exec", Enabled: false},
}

func (f *fixture) invoke(t *testing.T, req dispatch.Request) *dispatch.Response {
	t.Helper()
	if req.DeviceID == (identity.DeviceID{}) {
		req.DeviceID = f.id
	}
	resp, err := f.d.Invoke(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestRefusedRequests(t *testing.T) {
	f := newFixture(t)
	var other identity.DeviceID
	other[0] = 1
	for _, tc := range []struct {
		name string
		req  dispatch.Request
		want error
	}{
		{"unknown device", dispatch.Request{DeviceID: other, Capability: "system.info"}, dispatch.ErrUnknownDevice},
		{"no capability", dispatch.Request{DeviceID: f.id}, dispatch.ErrNoCapability},
		{"array args", dispatch.Request{DeviceID: f.id, Capability: "system.info", Args: []byte(`[1]`)}, dispatch.ErrInvalidArgs},
		{"null args", dispatch.Request{DeviceID: f.id, Capability: "system.info", Args: []byte(`null`)}, dispatch.ErrInvalidArgs},
		{"broken args", dispatch.Request{DeviceID: f.id, Capability: "system.info", Args: []byte(`{"a":`)}, dispatch.ErrInvalidArgs},
		{"string args", dispatch.Request{DeviceID: f.id, Capability: "system.info", Args: []byte(` "{}"`)}, dispatch.ErrInvalidArgs},
		{"two objects", dispatch.Request{DeviceID: f.id, Capability: "system.info", Args: []byte(`{} {}`)}, dispatch.ErrInvalidArgs},
		{"object then garbage", dispatch.Request{DeviceID: f.id, Capability: "system.info", Args: []byte(`{"a":1}x`)}, dispatch.ErrInvalidArgs},
		{"huge args", dispatch.Request{DeviceID: f.id, Capability: "system.info", Args: make([]byte, dispatch.MaxArgsSize+1)}, dispatch.ErrInvalidArgs},
	} {
		if _, err := f.d.Invoke(t.Context(), tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := f.store.RevokeDevice(t.Context(), f.id, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Invoke(t.Context(), dispatch.Request{DeviceID: f.id, Capability: "system.info"}); !errors.Is(err, dispatch.ErrRevoked) {
		t.Errorf("revoked device: got %v", err)
	}
}

func TestManifestChecksBeforeSending(t *testing.T) {
	f := newFixture(t)
	c := &carrier{answer: ok}
	f.d.Attach(f.id, "test", c, manifest)
	if r := f.invoke(t, dispatch.Request{Capability: "shell.exec"}).Result; r.GetErrorCode() != callcode.Disabled {
		t.Fatalf("disabled: %v", r)
	}
	if r := f.invoke(t, dispatch.Request{Capability: "no.such"}).Result; r.GetErrorCode() != callcode.UnknownCapability {
		t.Fatalf("unknown: %v", r)
	}
	if c.count() != 0 {
		t.Fatalf("%d refused calls reached the node", c.count())
	}
	resp := f.invoke(t, dispatch.Request{Capability: "system.info"})
	if !resp.Result.GetOk() || c.count() != 1 || c.calls[0].GetRequestId() != resp.RequestID || c.calls[0].GetDeadlineUnixMs() == 0 {
		t.Fatalf("call: %v, carrier saw %v", resp, c.calls)
	}
	// Enabling it live lets it through.
	f.d.SetCapabilities(f.id, []*nodev1.Capability{{Name: "shell.exec", Enabled: true}})
	if r := f.invoke(t, dispatch.Request{Capability: "shell.exec"}).Result; !r.GetOk() {
		t.Fatalf("enabled: %v", r)
	}
	// The events show every call at once.
	var calls int
	for _, e := range f.hub.Recent(f.id) {
		if e.Kind == events.KindInvocation {
			calls++
		}
	}
	if calls != 4 {
		t.Fatalf("%d invocation events, want 4", calls)
	}
}

func TestCallOutcomes(t *testing.T) {
	f := newFixture(t)
	c := &carrier{}
	f.d.Attach(f.id, "test", c, manifest)
	// No answer within the timeout.
	r := f.invoke(t, dispatch.Request{Capability: "system.info", Timeout: 20 * time.Millisecond}).Result
	if r.GetErrorCode() != callcode.Timeout {
		t.Fatalf("timeout: %v", r)
	}
	c.mu.Lock()
	c.answer = func(*nodev1.Invoke) (*nodev1.Result, error) { return nil, errGone }
	c.mu.Unlock()
	if r := f.invoke(t, dispatch.Request{Capability: "system.info"}).Result; r.GetErrorCode() != callcode.NodeGone {
		t.Fatalf("gone: %v", r)
	}
	c.mu.Lock()
	c.answer = func(*nodev1.Invoke) (*nodev1.Result, error) { return nil, errors.New("garbage") }
	c.mu.Unlock()
	if r := f.invoke(t, dispatch.Request{Capability: "system.info"}).Result; r.GetErrorCode() != callcode.BadAnswer {
		t.Fatalf("bad answer: %v", r)
	}
	f.d.Detach(f.id, "test over")
	if r := f.invoke(t, dispatch.Request{Capability: "system.info"}).Result; r.GetErrorCode() != callcode.Offline {
		t.Fatalf("offline: %v", r)
	}
	// The caller giving up is an error, not a result.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.d.Invoke(ctx, dispatch.Request{DeviceID: f.id, Capability: "system.info", QueueTTL: time.Minute}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
}

// TestQueuedCallDeliveredOnce: a queued call reaches the node when it
// attaches, its caller gets the result, and attaching again delivers
// nothing twice.
func TestQueuedCallDeliveredOnce(t *testing.T) {
	f := newFixture(t)
	got := f.queueCall(t)
	c := &carrier{answer: ok}
	f.d.Attach(f.id, "test", c, manifest)
	var resp *dispatch.Response
	select {
	case resp = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("queued call not delivered")
	}
	if !resp.Queued || !resp.Result.GetOk() {
		t.Fatalf("queued call: %+v", resp)
	}
	inv, err := f.store.GetInvocation(t.Context(), resp.RequestID)
	if err != nil || inv.State != store.InvocationDone {
		t.Fatalf("stored call: %+v %v", inv, err)
	}
	f.d.Detach(f.id, "bye")
	c2 := &carrier{answer: ok}
	f.d.Attach(f.id, "test", c2, manifest)
	// Attach drains in the background; a direct call afterwards is
	// answered only once the drain found nothing (it runs first on the
	// same node) - check the new carrier saw just that call.
	if r := f.invoke(t, dispatch.Request{Capability: "system.info"}).Result; !r.GetOk() {
		t.Fatal(r)
	}
	for _, inv := range c2.calls {
		if inv.GetRequestId() == resp.RequestID {
			t.Fatal("queued call delivered twice")
		}
	}
}

func TestQueuedCallExpires(t *testing.T) {
	f := newFixture(t)
	resp := f.invoke(t, dispatch.Request{Capability: "system.info", QueueTTL: 10 * time.Millisecond, Timeout: 10 * time.Millisecond})
	if !resp.Queued || resp.Result.GetErrorCode() != callcode.Expired {
		t.Fatalf("expired call: %+v", resp)
	}
}

// TestReconnectDuringDelivery: a node that reconnects while a queued call
// is in flight on its old session gets the call on the new one.
func TestReconnectDuringDelivery(t *testing.T) {
	f := newFixture(t)
	got := f.queueCall(t)
	deadline := time.After(10 * time.Second)
	arrived, release := make(chan struct{}), make(chan struct{})
	old := &carrier{answer: func(*nodev1.Invoke) (*nodev1.Result, error) {
		close(arrived)
		<-release
		return nil, errGone
	}}
	f.d.Attach(f.id, "test", old, manifest)
	select {
	case <-arrived:
	case <-deadline:
		t.Fatal("queued call not sent to the first session")
	}
	fresh := &carrier{answer: ok}
	f.d.Attach(f.id, "test", fresh, manifest)
	close(release)
	select {
	case resp := <-got:
		if !resp.Result.GetOk() || fresh.count() != 1 {
			t.Fatalf("after reconnect: %+v; new session saw %d calls", resp, fresh.count())
		}
	case <-deadline:
		t.Fatal("queued call stranded after the reconnect")
	}
}

// TestCallFollowsCarrierMove: a call that finds the node's session moved
// to the other carrier (the old carrier sent nothing) goes to the new one
// once it is attached, instead of being answered "offline"; if the node
// goes away instead, it is answered "offline" at once.
func TestCallFollowsCarrierMove(t *testing.T) {
	f := newFixture(t)
	tried := make(chan struct{}, 1)
	old := &carrier{answer: func(*nodev1.Invoke) (*nodev1.Result, error) {
		tried <- struct{}{}
		return nil, errMoved
	}}
	fresh := &carrier{answer: ok}
	f.d.Attach(f.id, "old", old, manifest)
	got := make(chan *dispatch.Response, 1)
	call := func() {
		resp, err := f.d.Invoke(t.Context(), dispatch.Request{DeviceID: f.id, Capability: "system.info"})
		if err != nil {
			t.Error(err)
			resp = &dispatch.Response{}
		}
		got <- resp
	}
	go call()
	testwait.Recv(t, tried, 10*time.Second, "the call on the old carrier")
	testwait.None(t, got, "an answer before the node is attached again")
	f.d.Attach(f.id, "fresh", fresh, manifest)
	if r := testwait.Recv(t, got, 10*time.Second, "the call's answer").Result; !r.GetOk() || fresh.count() != 1 {
		t.Fatalf("call across the move: %v; the new carrier saw %d calls", r, fresh.count())
	}

	f.d.Attach(f.id, "old", old, manifest)
	go call()
	testwait.Recv(t, tried, 10*time.Second, "the second call on the old carrier")
	f.d.Detach(f.id, "gone")
	if r := testwait.Recv(t, got, 10*time.Second, "the answer once the node is gone").Result; r.GetErrorCode() != callcode.Offline {
		t.Fatalf("call after the node went away: %v", r)
	}
}

// queueCall invokes system.info on the offline node with a queue TTL and
// returns once the call is queued; the channel gets its response.
func (f *fixture) queueCall(t *testing.T) <-chan *dispatch.Response {
	t.Helper()
	// Watch first: the event comes after the row is stored.
	watch := f.hub.Watch(t.Context(), f.id)
	got := make(chan *dispatch.Response, 1)
	go func() {
		resp, err := f.d.Invoke(context.Background(), dispatch.Request{DeviceID: f.id, Capability: "system.info", QueueTTL: time.Minute})
		if err != nil {
			resp = &dispatch.Response{Result: &nodev1.Result{ErrorMessage: err.Error()}}
		}
		got <- resp
	}()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-watch:
			if e.Kind == events.KindInvocation {
				return got
			}
		case <-deadline:
			t.Fatal("never queued")
		}
	}
}
