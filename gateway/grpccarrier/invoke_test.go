package grpccarrier_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/testwait"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// A call reaches the node, its progress reaches the caller, and the result
// comes back; concurrent calls each get their own result.
func TestInvokeRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	const concurrent = 16
	var (
		progressSeen = make(chan struct{})
		arrivedMu    sync.Mutex
		arrived      int
		allArrived   = make(chan struct{})
	)
	cfg := f.sessionConfig(d)
	cfg.Invoke = func(ctx context.Context, inv *nodev1.Invoke, progress func(string)) *nodev1.Result {
		switch inv.GetCapability() {
		case "test.progress":
			progress("half way")
			// Progress rides the stream and the result its own RPC:
			// answer once the caller has seen it.
			select {
			case <-progressSeen:
			case <-ctx.Done():
			}
			return &nodev1.Result{Ok: true, OutputJson: []byte(`"done"`)}
		case "test.echo":
			// Every call waits for all of them: they run at once.
			arrivedMu.Lock()
			arrived++
			if arrived == concurrent {
				close(allArrived)
			}
			arrivedMu.Unlock()
			select {
			case <-allArrived:
			case <-ctx.Done():
				return &nodev1.Result{ErrorCode: "timeout"}
			}
			return &nodev1.Result{Ok: true, OutputJson: inv.GetArgsJson()}
		}
		return &nodev1.Result{ErrorCode: "unknown_capability"}
	}
	f.runNode(t, cfg)

	t.Run("progress", func(t *testing.T) {
		var got []string
		res, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "p1", Capability: "test.progress"}, func(p *nodev1.Progress) {
			if p.GetRequestId() != "p1" {
				t.Errorf("progress for %q", p.GetRequestId())
			}
			got = append(got, p.GetMessage())
			if len(got) == 1 {
				close(progressSeen)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.GetOk() || string(res.GetOutputJson()) != `"done"` || res.GetRequestId() != "p1" || res.GetDeviceId() != d.ID().String() {
			t.Errorf("result %v", res)
		}
		if len(got) != 1 || got[0] != "half way" {
			t.Errorf("progress %q, want [half way]", got)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, concurrent)
		for i := range concurrent {
			wg.Go(func() {
				args := fmt.Sprintf(`{"n":%d}`, i)
				res, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{
					RequestId: fmt.Sprintf("c%02d", i), Capability: "test.echo", ArgsJson: []byte(args),
				}, nil)
				switch {
				case err != nil:
					errs <- fmt.Errorf("call %d: %w", i, err)
				case !res.GetOk() || string(res.GetOutputJson()) != args || res.GetRequestId() != fmt.Sprintf("c%02d", i):
					errs <- fmt.Errorf("call %d got %v", i, res)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// The node reads a call's deadline in its own clock, corrected by the skew
// it learned from Welcome.
func TestInvokeDeadlineAcrossClockSkew(t *testing.T) {
	t.Parallel()
	const skew = time.Hour // the gateway's clock is an hour ahead
	gatewayNow := func() time.Time { return time.Now().Add(skew) }
	f := newFixtureWith(t, options{ttl: time.Second, now: gatewayNow})
	d := testpki.NewDevice(t, f.CA)
	cfg := f.sessionConfig(d)
	cfg.Invoke = func(ctx context.Context, _ *nodev1.Invoke, _ func(string)) *nodev1.Result {
		dl, ok := ctx.Deadline()
		if !ok {
			return &nodev1.Result{ErrorCode: "failed", ErrorMessage: "no deadline"}
		}
		out, _ := json.Marshal(dl.UnixMilli())
		return &nodev1.Result{Ok: true, OutputJson: out}
	}
	f.runNode(t, cfg)
	const budget = 3 * time.Second
	want := time.Now().Add(budget)
	res, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{
		RequestId: "dl", DeadlineUnixMs: gatewayNow().Add(budget).UnixMilli(),
	}, nil)
	if err != nil || !res.GetOk() {
		t.Fatalf("Invoke = %v, %v", res, err)
	}
	var ms int64
	if err := json.Unmarshal(res.GetOutputJson(), &ms); err != nil {
		t.Fatal(err)
	}
	if got := time.UnixMilli(ms); got.Sub(want).Abs() > time.Second {
		t.Errorf("node's deadline %v, want about %v", got, want)
	}
}

// When the caller gives up, the node's handler sees its context end.
func TestInvokeCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		giveUp func(context.Context) (context.Context, context.CancelFunc, func())
		want   error
	}{
		{"canceled", func(ctx context.Context) (context.Context, context.CancelFunc, func()) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, cancel, cancel
		}, context.Canceled},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc, func()) {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			return ctx, cancel, func() {}
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, time.Second)
			d := testpki.NewDevice(t, f.CA)
			started := make(chan string, 1)
			causes := make(chan error, 1)
			cfg := f.sessionConfig(d)
			cfg.Invoke = testregistry.UntilCanceled(started, causes)
			n := f.runNode(t, cfg)
			ctx, cancel, giveUp := tt.giveUp(t.Context())
			defer cancel()
			calls := make(chan error, 1)
			go func() {
				_, err := f.srv.Invoke(ctx, d.ID(), &nodev1.Invoke{RequestId: "slow", Capability: "test.slow"}, nil)
				calls <- err
			}()
			if id := testwait.Recv(t, started, waitTimeout, "the call to start"); id != "slow" {
				t.Errorf("node runs %q", id)
			}
			giveUp()
			if err := testwait.Recv(t, calls, waitTimeout, "Invoke to return"); !errors.Is(err, tt.want) {
				t.Errorf("Invoke = %v, want %v", err, tt.want)
			}
			cause := testwait.Recv(t, causes, waitTimeout, "the handler's context to end")
			if !errors.Is(cause, context.Canceled) || !strings.Contains(cause.Error(), "gateway canceled") {
				t.Errorf("handler's context ended with %v, want the gateway's Cancel", cause)
			}
			// The session lives on.
			select {
			case err := <-n.done:
				t.Errorf("Serve returned %v", err)
			default:
			}
			if s := f.Sessions.Sessions(); len(s) != 1 {
				t.Errorf("Sessions() = %+v", s)
			}
		})
	}
}

func TestInvokeNodeGoneMidCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	started := make(chan struct{})
	handlerDone := make(chan struct{})
	cfg := f.sessionConfig(d)
	cfg.Invoke = func(ctx context.Context, _ *nodev1.Invoke, _ func(string)) *nodev1.Result {
		defer close(handlerDone)
		close(started)
		<-ctx.Done()
		return &nodev1.Result{ErrorCode: "canceled"}
	}
	n := f.runNode(t, cfg)
	calls := make(chan error, 1)
	go func() {
		_, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "mid"}, nil)
		calls <- err
	}()
	testwait.Recv(t, started, waitTimeout, "the call to start")
	n.conn.Close() // the laptop drops off
	err := testwait.Recv(t, calls, waitTimeout, "Invoke to fail")
	if !errors.Is(err, carrier.ErrNodeGone) {
		t.Errorf("Invoke = %v, want ErrNodeGone", err)
	}
	if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.Reason != "node disconnected" {
		t.Errorf("NodeGone reason %q", g.Reason)
	}
	testwait.Recv(t, handlerDone, waitTimeout, "the node's handler to end")
	testwait.Recv(t, n.done, waitTimeout, "Serve to return")

	if _, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "after"}, nil); !errors.Is(err, carrier.ErrNodeOffline) {
		t.Errorf("Invoke after the node left = %v, want ErrNodeOffline", err)
	}
}

func TestInvokeOffline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	if _, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "x"}, nil); !errors.Is(err, carrier.ErrNodeOffline) {
		t.Errorf("Invoke = %v, want ErrNodeOffline", err)
	}
	// Registered but without a session is offline too.
	if _, err := f.rawClient(t, d.Cert).RegisterNode(t.Context(), &nodev1.RegisterNode{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "x"}, nil); !errors.Is(err, carrier.ErrNodeOffline) {
		t.Errorf("Invoke = %v, want ErrNodeOffline", err)
	}
	if _, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{}, nil); err == nil {
		t.Error("Invoke without a request ID succeeded")
	}
}

// Only the device a call was sent to can answer it, once; progress from
// another device does not reach the caller.
func TestSubmitResultOwnership(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	a, b := testpki.NewDevice(t, f.CA), testpki.NewDevice(t, f.CA)
	clientA, clientB := f.rawClient(t, a.Cert), f.rawClient(t, b.Cert)
	strA, _ := rawSession(t, clientA)
	strB, _ := rawSession(t, clientB)

	type answer struct {
		res *nodev1.Result
		err error
	}
	progress := make(chan string, 8)
	answers := make(chan answer, 1)
	go func() {
		res, err := f.srv.Invoke(t.Context(), a.ID(), &nodev1.Invoke{RequestId: "REQ-A", Capability: "test.echo"}, func(p *nodev1.Progress) {
			progress <- p.GetMessage()
		})
		answers <- answer{res, err}
	}()
	fr, err := strA.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if fr.GetInvoke().GetRequestId() != "REQ-A" {
		t.Fatalf("device A got %v, want the Invoke", fr)
	}

	// B reports progress on A's call; B's renewal being granted shows the
	// gateway has read it.
	sendFrame(t, strB, &nodev1.Frame{Body: &nodev1.Frame_Progress{Progress: &nodev1.Progress{RequestId: "REQ-A", Message: "from B"}}})
	sendFrame(t, strB, &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: 1}}})
	if fr, err := strB.Recv(); err != nil || fr.GetLeaseGranted().GetSequence() != 1 {
		t.Fatalf("B's renewal: %v, %v", fr, err)
	}
	sendFrame(t, strA, &nodev1.Frame{Body: &nodev1.Frame_Progress{Progress: &nodev1.Progress{RequestId: "REQ-A", Message: "from A"}}})
	if got := testwait.Recv(t, progress, waitTimeout, "A's progress"); got != "from A" {
		t.Errorf("caller saw progress %q, want only A's", got)
	}

	tests := []struct {
		name    string
		client  nodev1.NodeClient
		res     *nodev1.Result
		code    codes.Code
		message string
	}{
		{"A names B", clientA, &nodev1.Result{RequestId: "REQ-A", Ok: true, DeviceId: b.ID().String()}, codes.PermissionDenied,
			fmt.Sprintf("the result names device %s but the certificate is device %s", b.ID(), a.ID())},
		{"B names A", clientB, &nodev1.Result{RequestId: "REQ-A", Ok: true, DeviceId: a.ID().String()}, codes.PermissionDenied, "the result names device"},
		{"A names garbage", clientA, &nodev1.Result{RequestId: "REQ-A", Ok: true, DeviceId: "not-a-device"}, codes.PermissionDenied, "the result names device"},
		{"unknown request", clientA, &nodev1.Result{RequestId: "NEVER-SENT", Ok: true}, codes.NotFound,
			"no call NEVER-SENT is waiting for a result from this device"},
		{"B answers A's call", clientB, &nodev1.Result{RequestId: "REQ-A", Ok: true, OutputJson: []byte(`"forged"`)}, codes.NotFound, "no call REQ-A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.SubmitCapabilityResult(t.Context(), tt.res)
			if st := status.Convert(err); st.Code() != tt.code || !strings.Contains(st.Message(), tt.message) {
				t.Errorf("SubmitCapabilityResult = %v, want %v %q", err, tt.code, tt.message)
			}
		})
	}
	testwait.None(t, answers, "an answer before A's")

	// A's own result, with its own ID (spelled as a person might) or none,
	// reaches the caller.
	own := &nodev1.Result{RequestId: "REQ-A", Ok: true, OutputJson: []byte(`"real"`), DeviceId: strings.ToLower(a.ID().String())}
	if _, err := clientA.SubmitCapabilityResult(t.Context(), own); err != nil {
		t.Fatalf("A's result refused: %v", err)
	}
	ans := testwait.Recv(t, answers, waitTimeout, "the answer")
	if ans.err != nil || string(ans.res.GetOutputJson()) != `"real"` {
		t.Errorf("Invoke = %v, %v; want A's real result", ans.res, ans.err)
	}
	// A second result for the same call has nobody to go to.
	_, err = clientA.SubmitCapabilityResult(t.Context(), own)
	wantCode(t, err, codes.NotFound)
	testwait.None(t, progress, "more progress")
}

// A result that comes with the certificate its call's session
// authenticated with is taken without checking the certificate or the
// store again: it is accepted while the store is failing. One with another
// certificate of the same device (renewed since) is checked in full.
func TestSubmitResultAuthenticatedBySession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	client := f.rawClient(t, d.Cert)
	str, _ := rawSession(t, client)
	renewed := f.rawClient(t, renewedCert(t, f.CA, d))

	result := func(id string) *nodev1.Result {
		return &nodev1.Result{RequestId: id, Ok: true, OutputJson: []byte(`"` + id + `"`)}
	}
	answered := func(c <-chan callOutcome, id string) {
		t.Helper()
		if a := testwait.Recv(t, c, waitTimeout, "the call's answer"); a.err != nil || string(a.res.GetOutputJson()) != `"`+id+`"` {
			t.Fatalf("Invoke = %v, %v; want the result submitted", a.res, a.err)
		}
	}

	f.Devices.Fail(errors.New("store down"))
	first := callRaw(t, f, d.ID(), str, "SESSION-CERT")
	if _, err := client.SubmitCapabilityResult(t.Context(), result("SESSION-CERT")); err != nil {
		t.Fatalf("the session's own certificate, store failing: %v", err)
	}
	answered(first, "SESSION-CERT")

	second := callRaw(t, f, d.ID(), str, "RENEWED-CERT")
	_, err := renewed.SubmitCapabilityResult(t.Context(), result("RENEWED-CERT"))
	wantCode(t, err, codes.Unavailable) // checked in full: the store is asked
	f.Devices.Fail(nil)
	if _, err := renewed.SubmitCapabilityResult(t.Context(), result("RENEWED-CERT")); err != nil {
		t.Fatalf("a renewed certificate of the same device: %v", err)
	}
	answered(second, "RENEWED-CERT")
}

// callOutcome is what a call's Invoke returned.
type callOutcome struct {
	res *nodev1.Result
	err error
}

// callRaw invokes requestID on device id and waits until its raw session
// str has read the Invoke; the outcome comes on the channel.
func callRaw(t *testing.T, f *fixture, id identity.DeviceID, str rawStream, requestID string) <-chan callOutcome {
	t.Helper()
	c := make(chan callOutcome, 1)
	go func() {
		res, err := f.srv.Invoke(t.Context(), id, &nodev1.Invoke{RequestId: requestID, Capability: "test.echo"}, nil)
		c <- callOutcome{res, err}
	}()
	if fr, err := str.Recv(); err != nil || fr.GetInvoke().GetRequestId() != requestID {
		t.Fatalf("the node got %v, %v; want the Invoke of %s", fr, err, requestID)
	}
	return c
}

// A revoked device's session is closed, and a result it sends afterwards,
// with the certificate the session authenticated with, is refused as
// revoked: the call it answers failed when the session ended.
func TestResultAfterRevocationRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	client := f.rawClient(t, d.Cert)
	str, _ := rawSession(t, client)
	call := callRaw(t, f, d.ID(), str, "LATE")

	f.Devices.Revoke(d.ID())
	if n := f.Sessions.Disconnect(d.ID(), ""); n != 1 {
		t.Fatalf("Disconnect closed %d sessions, want 1", n)
	}
	if st := recvStatus(t, str); st.Code() != codes.PermissionDenied {
		t.Errorf("the stream ended with %v, want PermissionDenied", st)
	}
	if a := testwait.Recv(t, call, waitTimeout, "Invoke to fail"); !errors.Is(a.err, carrier.ErrNodeGone) {
		t.Errorf("Invoke = %v, want ErrNodeGone", a.err)
	}
	_, err := client.SubmitCapabilityResult(t.Context(), &nodev1.Result{RequestId: "LATE", Ok: true})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "device revoked" {
		t.Errorf("a result after revocation = %v, want PermissionDenied \"device revoked\"", err)
	}
}

// renewedCert is a second certificate for d's key, as a renewal gives.
func renewedCert(t *testing.T, ca *identity.CA, d *testpki.Device) *tls.Certificate {
	t.Helper()
	csr, err := d.Key.CreateCSR(rand.Reader, "node")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueDeviceCertificate(csr, identity.IssueOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if string(cert.Raw) == string(d.Cert.Leaf.Raw) {
		t.Fatal("the renewed certificate is the first one")
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: d.Key.Signer(), Leaf: cert}
}

func sendFrame(t *testing.T, str rawStream, f *nodev1.Frame) {
	t.Helper()
	if err := str.Send(f); err != nil {
		t.Fatal(err)
	}
}

// A call's request ID can wait only once per device.
func TestInvokeDuplicateRequestID(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	str, _ := rawSession(t, f.rawClient(t, d.Cert))
	first := make(chan error, 1)
	go func() {
		_, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "dup"}, nil)
		first <- err
	}()
	if fr, err := str.Recv(); err != nil || fr.GetInvoke() == nil {
		t.Fatalf("got %v, %v; want the Invoke", fr, err)
	}
	if _, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "dup"}, nil); err == nil || errors.Is(err, carrier.ErrNodeGone) {
		t.Errorf("second Invoke with the same ID = %v, want a refusal", err)
	}
	testwait.None(t, first, "the first call's end")
}

// A burst of calls larger than the session's send queue neither fails nor
// holds up the lease grants. Not parallel: it keeps both cores busy, which
// would starve the short leases of other tests.
func TestInvokeBurst(t *testing.T) {
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	cfg := f.sessionConfig(d)
	cfg.Invoke = func(_ context.Context, inv *nodev1.Invoke, progress func(string)) *nodev1.Result {
		progress("running")
		return &nodev1.Result{Ok: true, OutputJson: []byte(`"` + inv.GetRequestId() + `"`)}
	}
	n := f.runNode(t, cfg)
	const calls = 256
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			id := fmt.Sprintf("b%03d", i)
			res, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: id}, func(*nodev1.Progress) {})
			switch {
			case err != nil:
				errs <- fmt.Errorf("call %s: %w", id, err)
			case string(res.GetOutputJson()) != `"`+id+`"`:
				errs <- fmt.Errorf("call %s got %v", id, res)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The session lives on.
	for i := range 2 {
		testwait.Recv(t, f.Runtime.Renewed, waitTimeout, fmt.Sprintf("renewal %d", i))
	}
	select {
	case err := <-n.done:
		t.Errorf("Serve returned %v", err)
	default:
	}
}

// A node that stops reading its stream holds up neither Disconnect nor the
// calls waiting for it: they fail at once when the session ends.
func TestNodeNotReading(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Minute)
	d := testpki.NewDevice(t, f.CA)
	str, _ := rawSession(t, f.rawClient(t, d.Cert))
	testwait.Recv(t, f.Runtime.Ready, waitTimeout, "NodeReady")
	const calls = 200 // 32 KiB each: far more than the HTTP/2 window and the send queue
	args := []byte(`"` + strings.Repeat("x", 32<<10) + `"`)
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			_, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: fmt.Sprintf("n%03d", i), ArgsJson: args}, nil)
			errs <- err
		}()
	}
	// One call has reached the node; it reads no more.
	if fr, err := str.Recv(); err != nil || fr.GetInvoke() == nil {
		t.Fatalf("got %v, %v; want an Invoke", fr, err)
	}
	if got := f.Sessions.Disconnect(d.ID(), "revoked by test"); got != 1 {
		t.Errorf("Disconnect ended %d sessions, want 1", got)
	}
	gone := 0
	for i := range calls {
		err := testwait.Recv(t, errs, waitTimeout, fmt.Sprintf("call %d to fail", i))
		switch {
		case errors.Is(err, carrier.ErrNodeGone):
			gone++
		case errors.Is(err, carrier.ErrNodeOffline): // started after the end
		default:
			t.Errorf("Invoke = %v, want ErrNodeGone or ErrNodeOffline", err)
		}
	}
	if gone == 0 {
		t.Error("no call was waiting on the session")
	}
	if g := testwait.Recv(t, f.Runtime.Gone, waitTimeout, "NodeGone"); g.Reason != "revoked by test" {
		t.Errorf("NodeGone reason %q", g.Reason)
	}
}

// TestCallOutlivesSession: with Config.Calls, a call running when its
// session ends goes on, Serve returns without waiting for it, and the call
// ends when Calls does, with its cause.
func TestCallOutlivesSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	d := testpki.NewDevice(t, f.CA)
	cfg := f.sessionConfig(d)
	started, endCalls := testregistry.OutlivingCalls(t, &cfg)
	n := f.runNode(t, cfg)
	errc := make(chan error, 1)
	go func() {
		_, err := f.srv.Invoke(t.Context(), d.ID(), &nodev1.Invoke{RequestId: "outlives"}, nil)
		errc <- err
	}()
	testwait.Recv(t, started, waitTimeout, "the call to start")
	n.conn.Close()
	if err := testwait.Recv(t, errc, waitTimeout, "Invoke to fail"); !errors.Is(err, carrier.ErrNodeGone) {
		t.Errorf("Invoke = %v, want ErrNodeGone", err)
	}
	testwait.Recv(t, n.done, waitTimeout, "Serve to return while the call runs")
	endCalls()
}
