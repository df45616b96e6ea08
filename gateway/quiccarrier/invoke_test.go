package quiccarrier_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/wire"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	nodequic "github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// dialNode connects a nodequic.Conn for d with handler and serves it in the
// background until the test ends; it waits until the gateway can reach it.
func (f *fixture) dialNode(t testing.TB, d *testpki.Device, handler nodecarrier.InvokeHandler, caps ...*nodev1.Capability) *nodequic.Conn {
	t.Helper()
	cfg := f.sessionConfig(d)
	cfg.Invoke = handler
	cfg.Register.Capabilities = caps
	c, err := nodequic.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	testregistry.Serve(t, c.Serve)
	testwait.Recv(t, f.Runtime.Registered, waitTimeout, "registration")
	testwait.Recv(t, f.Runtime.Ready, waitTimeout, "ready")
	return c
}

func invoke(ctx context.Context, f *fixture, d *testpki.Device, id string, progress func(*nodev1.Progress)) (*nodev1.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	return f.srv.Invoke(ctx, d.ID(), &nodev1.Invoke{
		RequestId:      id,
		Capability:     "test.echo",
		ArgsJson:       []byte(`{"x":1}`),
		DeadlineUnixMs: dl.UnixMilli(),
	}, progress)
}

func TestInvokeRoundTrip(t *testing.T) {
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	manifest := &nodev1.Capability{Name: "test.echo", Enabled: true}
	f.dialNode(t, d, func(ctx context.Context, inv *nodev1.Invoke, progress func(string)) *nodev1.Result {
		if _, ok := ctx.Deadline(); !ok {
			return &nodev1.Result{ErrorCode: "failed", ErrorMessage: "no deadline"}
		}
		progress("halfway")
		return &nodev1.Result{Ok: true, OutputJson: append([]byte(inv.GetCapability()+" "), inv.GetArgsJson()...)}
	}, manifest)

	var got []string
	res, err := invoke(t.Context(), f, d, "01ARZ3NDEKTSV4RRFFQ69G5FAV", func(p *nodev1.Progress) { got = append(got, p.GetMessage()) })
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetOk() || string(res.GetOutputJson()) != `test.echo {"x":1}` || res.GetRequestId() != "01ARZ3NDEKTSV4RRFFQ69G5FAV" {
		t.Fatalf("result %v", res)
	}
	if len(got) != 1 || got[0] != "halfway" {
		t.Fatalf("progress %q", got)
	}
	// Concurrent calls each get their own result.
	errs := make(chan error, 8)
	for i := range 8 {
		id := string(rune('A'+i)) + "0000000000000000000000000"
		go func() {
			res, err := invoke(t.Context(), f, d, id, nil)
			if err == nil && res.GetRequestId() != id {
				err = errors.New("result for " + res.GetRequestId() + " given to " + id)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := testwait.Recv(t, errs, waitTimeout, "concurrent result"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInvokeOffline(t *testing.T) {
	f := newFixture(t, time.Minute)
	if _, err := invoke(t.Context(), f, testpki.NewDevice(t, f.CA), "X", nil); !errors.Is(err, carrier.ErrNodeOffline) {
		t.Fatalf("got %v, want ErrNodeOffline", err)
	}
}

// TestInvokeCancel: a caller that gives up tells the node, whose handler
// sees its context end.
func TestInvokeCancel(t *testing.T) {
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	started := make(chan string, 1)
	ended := make(chan error, 1)
	f.dialNode(t, d, testregistry.UntilCanceled(started, ended))
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := invoke(ctx, f, d, "C", nil)
		errc <- err
	}()
	testwait.Recv(t, started, waitTimeout, "call start")
	cancel()
	if err := testwait.Recv(t, errc, waitTimeout, "invoke"); !errors.Is(err, context.Canceled) {
		t.Fatalf("invoke: %v, want context.Canceled", err)
	}
	if err := testwait.Recv(t, ended, waitTimeout, "handler end"); !errors.Is(err, context.Canceled) || !errors.Is(err, nodecarrier.ErrCanceledByGateway) {
		t.Fatalf("handler ended with %v, want the gateway's cancel", err)
	}
}

// TestInvokeNodeGone: a node that disconnects mid-call ends the call with
// ErrNodeGone.
func TestInvokeNodeGone(t *testing.T) {
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	started := make(chan struct{})
	release := make(chan struct{})
	c := f.dialNode(t, d, func(ctx context.Context, inv *nodev1.Invoke, _ func(string)) *nodev1.Result {
		close(started)
		<-release
		return &nodev1.Result{Ok: true}
	})
	defer close(release)
	errc := make(chan error, 1)
	go func() {
		_, err := invoke(t.Context(), f, d, "G", nil)
		errc <- err
	}()
	testwait.Recv(t, started, waitTimeout, "call start")
	c.Close()
	if err := testwait.Recv(t, errc, waitTimeout, "invoke"); !errors.Is(err, carrier.ErrNodeGone) {
		t.Fatalf("invoke: %v, want ErrNodeGone", err)
	}
}

// TestInvokeBadAnswer: a result for another request is refused.
func TestInvokeBadAnswer(t *testing.T) {
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	conn, str := f.rawClient(t, d)
	register(t, str)
	testwait.Recv(t, f.Runtime.Ready, waitTimeout, "ready")
	go func() {
		s, err := conn.AcceptStream(t.Context())
		if err != nil {
			return
		}
		var in nodev1.Frame
		if wire.ReadFrame(s, &in) != nil {
			return
		}
		_ = wire.WriteFrame(s, &nodev1.Frame{Body: &nodev1.Frame_Result{Result: &nodev1.Result{RequestId: "someone else's", Ok: true}}})
	}()
	if _, err := invoke(t.Context(), f, d, "B", nil); !errors.Is(err, carrier.ErrBadAnswer) {
		t.Fatalf("invoke: %v, want ErrBadAnswer", err)
	}
}

func TestCapabilitiesAndEvents(t *testing.T) {
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	cfg := f.sessionConfig(d)
	cfg.Register.Capabilities = []*nodev1.Capability{{Name: "system.info", Enabled: true}}
	c, err := nodequic.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.Serve(ctx)
	if info := testwait.Recv(t, f.Runtime.Registered, waitTimeout, "registration"); len(info.Capabilities) != 1 || info.Capabilities[0].GetName() != "system.info" {
		t.Fatalf("registered manifest %v", info.Capabilities)
	}
	if err := c.SendCapabilities([]*nodev1.Capability{{Name: "system.info", Enabled: false}}); err != nil {
		t.Fatal(err)
	}
	if caps := testwait.Recv(t, f.Runtime.Caps, waitTimeout, "capabilities"); len(caps) != 1 || caps[0].GetEnabled() {
		t.Fatalf("changed manifest %v", caps)
	}
	if s := f.Sessions.Sessions(); len(s) != 1 || s[0].Capabilities[0].GetEnabled() {
		t.Fatalf("session manifest not updated: %v", s)
	}
	if err := c.SendEvent(&nodev1.NodeEvent{Kind: nodev1.NodeEvent_KIND_CONSENT, Message: "denied"}); err != nil {
		t.Fatal(err)
	}
	if ev := testwait.Recv(t, f.Runtime.Events, waitTimeout, "event"); ev.GetMessage() != "denied" {
		t.Fatalf("event %v", ev)
	}
}

// TestCallOutlivesSession: with Config.Calls, a call running when its
// session ends goes on, Serve returns without waiting for it, and the call
// ends when Calls does, with its cause.
func TestCallOutlivesSession(t *testing.T) {
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	cfg := f.sessionConfig(d)
	started, endCalls := testregistry.OutlivingCalls(t, &cfg)
	c, err := nodequic.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, served := testregistry.Serve(t, c.Serve)
	testwait.Recv(t, f.Runtime.Registered, waitTimeout, "registration")
	testwait.Recv(t, f.Runtime.Ready, waitTimeout, "ready")
	errc := make(chan error, 1)
	go func() {
		_, err := invoke(t.Context(), f, d, "O", nil)
		errc <- err
	}()
	testwait.Recv(t, started, waitTimeout, "call start")
	c.Close()
	if err := testwait.Recv(t, errc, waitTimeout, "invoke"); !errors.Is(err, carrier.ErrNodeGone) {
		t.Fatalf("invoke: %v, want ErrNodeGone", err)
	}
	testwait.Recv(t, served, waitTimeout, "Serve to return while the call runs")
	endCalls()
}
