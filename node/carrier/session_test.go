package carrier

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/palyra/palyra-go/internal/testwait"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// newTestSession is a session whose frames go to the returned channel
// (send fails with sendErr when it is not nil), registered with a Welcome
// of lease TTL ttl from a gateway whose clock is skew ahead of ours.
func newTestSession(ttl, skew time.Duration, invoke InvokeHandler, sendErr error) (*Session, <-chan *nodev1.Frame) {
	frames := make(chan *nodev1.Frame, 100)
	cfg := Config{Now: time.Now, Logger: slog.New(slog.DiscardHandler), Invoke: invoke}
	w := &nodev1.Welcome{LeaseTtlMs: ttl.Milliseconds(), ServerTimeUnixMs: time.Now().Add(skew).UnixMilli()}
	s := NewSession(cfg, w, func(f *nodev1.Frame) error {
		if sendErr != nil {
			return sendErr
		}
		frames <- f
		return nil
	})
	return s, frames
}

// keep runs s.KeepLease(ctx) and returns where its error will come.
func keep(ctx context.Context, s *Session) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.KeepLease(ctx) }()
	return done
}

func TestWelcome(t *testing.T) {
	t.Parallel()
	s, _ := newTestSession(9*time.Second, 0, nil, nil)
	if s.TTL() != 9*time.Second || s.Welcome().GetLeaseTtlMs() != 9000 || s.Log() == nil {
		t.Errorf("TTL %v, Welcome %v, Log %v", s.TTL(), s.Welcome(), s.Log())
	}
	if s, _ := newTestSession(0, 0, nil, nil); s.TTL() != defaultLeaseTTL {
		t.Errorf("a Welcome without a lease TTL gives %v, want %v", s.TTL(), defaultLeaseTTL)
	}
}

// The keeper renews every TTL/3 while the gateway answers, and ends the
// session one TTL after the gateway's last frame.
func TestKeepLease(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const ttl = 3 * time.Second
		s, frames := newTestSession(ttl, 0, nil, nil)
		start := time.Now()
		done := keep(t.Context(), s)
		// The gateway answers each renewal half a period later, for two
		// leases' worth of renewals.
		for seq := uint64(1); seq <= 6; seq++ {
			renewAt := start.Add(time.Duration(seq) * ttl / 3)
			time.Sleep(time.Until(renewAt.Add(-time.Millisecond)))
			synctest.Wait()
			if n := len(frames); n != 0 {
				t.Fatalf("renewal %d early, at %v", seq, time.Since(start))
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			select {
			case f := <-frames:
				if got := f.GetLeaseRenewal().GetSequence(); got != seq {
					t.Fatalf("renewal %d has sequence %d (%v)", seq, got, f)
				}
			default:
				t.Fatalf("no renewal %d at %v", seq, time.Since(start))
			}
			if n := len(frames); n != 0 {
				t.Fatalf("%d more frames at %v", n, time.Since(start))
			}
			time.Sleep(time.Until(renewAt.Add(ttl / 6)))
			s.Alive()
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("KeepLease returned while the gateway answered: %v", err)
			default:
			}
		}
		// Now the gateway is silent: renewals go on until, one TTL after
		// the last answer, the lease is over.
		lastAnswer := time.Now()
		time.Sleep(ttl - time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("KeepLease returned %v before a whole TTL of silence", err)
		default:
		}
		if n := len(frames); n != 3 {
			t.Errorf("%d renewals in a silent TTL, want 3", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, ErrLeaseExpired) {
				t.Errorf("KeepLease = %v, want ErrLeaseExpired", err)
			}
			if silent := time.Since(lastAnswer); silent != ttl {
				t.Errorf("the lease ended after %v of silence, want %v", silent, ttl)
			}
		default:
			t.Fatal("KeepLease still running a TTL after the gateway's last frame")
		}
	})
}

func TestKeepLeaseEnds(t *testing.T) {
	t.Parallel()
	readerGone := errors.New("the reader stopped")
	t.Run("with the context's cause", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			s, _ := newTestSession(3*time.Second, 0, nil, nil)
			ctx, end := context.WithCancelCause(t.Context())
			done := keep(ctx, s)
			time.Sleep(time.Second / 2)
			end(readerGone)
			synctest.Wait()
			select {
			case err := <-done:
				if err != readerGone {
					t.Errorf("KeepLease = %v, want the context's cause", err)
				}
			default:
				t.Fatal("KeepLease still running after its context ended")
			}
		})
	})
	t.Run("when a renewal fails", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			writeFailed := errors.New("stream reset")
			s, _ := newTestSession(3*time.Second, 0, nil, writeFailed)
			done := keep(t.Context(), s)
			time.Sleep(time.Second)
			synctest.Wait()
			select {
			case err := <-done:
				if !errors.Is(err, writeFailed) || errors.Is(err, ErrLeaseExpired) {
					t.Errorf("KeepLease = %v, want the renewal's error", err)
				}
			default:
				t.Fatal("KeepLease still running after a renewal failed")
			}
		})
	})
}

func TestSendFrames(t *testing.T) {
	t.Parallel()
	s, frames := newTestSession(time.Second, 0, nil, nil)
	caps := []*nodev1.Capability{{Name: "test.echo"}}
	if err := s.SendCapabilities(caps); err != nil {
		t.Fatal(err)
	}
	if f := <-frames; len(f.GetCapabilitiesChanged().GetCapabilities()) != 1 {
		t.Errorf("sent %v, want CapabilitiesChanged", f)
	}
	if err := s.SendEvent(&nodev1.NodeEvent{}); err != nil {
		t.Fatal(err)
	}
	if f := <-frames; f.GetEvent() == nil {
		t.Errorf("sent %v, want an Event", f)
	}
	broken := errors.New("broken")
	s, _ = newTestSession(time.Second, 0, nil, broken)
	if err := s.SendCapabilities(caps); !errors.Is(err, broken) {
		t.Errorf("SendCapabilities = %v", err)
	}
	if err := s.SendEvent(&nodev1.NodeEvent{}); !errors.Is(err, broken) {
		t.Errorf("SendEvent = %v", err)
	}
}

// A call's deadline is on the gateway's clock: the node reads it with the
// skew Welcome showed.
func TestRunCallDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const skew = time.Hour // the gateway's clock is an hour ahead
		var deadline time.Time
		var progressed []string
		handler := func(ctx context.Context, inv *nodev1.Invoke, progress func(string)) *nodev1.Result {
			deadline, _ = ctx.Deadline()
			progress("working")
			<-ctx.Done()
			return &nodev1.Result{ErrorCode: "timeout"}
		}
		s, _ := newTestSession(time.Second, skew, handler, nil)
		start := time.Now()
		inv := &nodev1.Invoke{RequestId: "r1", DeadlineUnixMs: start.Add(skew + 10*time.Second).UnixMilli()}
		call := s.StartCall(inv)
		defer call.End()
		res, answer := call.Run(func(m string) { progressed = append(progressed, m) })
		if want := start.Add(10 * time.Second); !deadline.Equal(want) {
			t.Errorf("the call's deadline is %v, want %v (10 s on our clock)", deadline, want)
		}
		if took := time.Since(start); took != 10*time.Second {
			t.Errorf("the call ran %v, want 10s", took)
		}
		if !answer {
			t.Error("a call past its deadline is not answered")
		}
		if res.GetRequestId() != "r1" || res.GetErrorCode() != "timeout" || len(progressed) != 1 {
			t.Errorf("result %v, progress %v", res, progressed)
		}
	})
}

func TestRunCall(t *testing.T) {
	t.Parallel()
	canceledByGateway := errors.New("canceled by the gateway")
	tests := []struct {
		name       string
		handler    InvokeHandler
		cancel     bool
		wantCode   string
		wantAnswer bool
	}{
		{"no handler", nil, false, "unknown_capability", true},
		{"no result", func(context.Context, *nodev1.Invoke, func(string)) *nodev1.Result { return nil }, false, "failed", true},
		{"answered", func(context.Context, *nodev1.Invoke, func(string)) *nodev1.Result {
			return &nodev1.Result{ErrorCode: "ok-ish"}
		}, false, "ok-ish", true},
		{"canceled", func(ctx context.Context, _ *nodev1.Invoke, _ func(string)) *nodev1.Result {
			<-ctx.Done()
			if !errors.Is(context.Cause(ctx), canceledByGateway) {
				return &nodev1.Result{ErrorCode: "wrong cause"}
			}
			return &nodev1.Result{ErrorCode: "canceled"}
		}, true, "canceled", false},
		{"no deadline", func(ctx context.Context, _ *nodev1.Invoke, _ func(string)) *nodev1.Result {
			if _, ok := ctx.Deadline(); ok {
				return &nodev1.Result{ErrorCode: "has a deadline"}
			}
			return &nodev1.Result{}
		}, false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSession(time.Second, 0, tt.handler, nil)
			call := s.StartCall(&nodev1.Invoke{RequestId: "r"})
			if tt.cancel {
				call.Cancel(canceledByGateway)
			}
			res, answer := call.Run(func(string) {})
			call.End()
			if res.GetRequestId() != "r" || res.GetErrorCode() != tt.wantCode || answer != tt.wantAnswer {
				t.Errorf("Run = %v, %v; want code %q, answer %v", res, answer, tt.wantCode, tt.wantAnswer)
			}
			if call.Context().Err() == nil {
				t.Error("the call's context outlived End")
			}
		})
	}
}

// callsAtEnd starts two calls on a session configured with calls (nil:
// none), one before and one after the session ends by the end of serve
// (nil: not by that), and returns the two calls' contexts and whether
// each was answered. The handler runs until its context ends or release
// is closed.
func callsAtEnd(t *testing.T, calls context.Context, endServe error, release <-chan struct{}) (ctxs [2]context.Context, answered <-chan bool) {
	t.Helper()
	started := make(chan context.Context, 2)
	handler := func(ctx context.Context, _ *nodev1.Invoke, _ func(string)) *nodev1.Result {
		started <- ctx
		select {
		case <-ctx.Done():
		case <-release:
		}
		return &nodev1.Result{}
	}
	frames := make(chan *nodev1.Frame, 1)
	cfg := Config{Now: time.Now, Logger: slog.New(slog.DiscardHandler), Invoke: handler, Calls: calls}
	s := NewSession(cfg, &nodev1.Welcome{}, func(f *nodev1.Frame) error { frames <- f; return nil })
	answers := make(chan bool, 2)
	run := func(i int, id string) {
		call := s.StartCall(&nodev1.Invoke{RequestId: id})
		go func() {
			defer call.End()
			_, answer := call.Run(nil)
			answers <- answer
		}()
		ctxs[i] = testwait.Recv(t, started, 10*time.Second, "call "+id+" to start")
	}
	run(0, "before")
	serve, endServing := context.WithCancelCause(t.Context())
	defer endServing(nil)
	if endServe != nil {
		endServing(endServe)
	}
	s.EndCalls(serve)
	run(1, "after")
	waited := make(chan struct{})
	go func() {
		s.WaitCalls()
		close(waited)
	}()
	if calls != nil && endServe == nil {
		testwait.Recv(t, waited, 10*time.Second, "the session's end, not waiting for the calls that go on")
	} else {
		testwait.Recv(t, waited, 10*time.Second, "the session's end to wait for the calls it ended")
	}
	return ctxs, answers
}

// A session's end lets its calls go on with Config.Calls, and their end
// comes with Calls'; without Calls it ends them with ErrSessionEnded, and
// the end of Serve's context ends them with its cause either way.
func TestCallsAtSessionEnd(t *testing.T) {
	t.Parallel()
	errStop := errors.New("agent stopping")
	errServe := errors.New("serving stopped")

	t.Run("go on", func(t *testing.T) {
		t.Parallel()
		calls, stop := context.WithCancelCause(t.Context())
		ctxs, answered := callsAtEnd(t, calls, nil, nil)
		for _, ctx := range ctxs {
			if ctx.Err() != nil {
				t.Fatalf("a call ended with its session: %v", context.Cause(ctx))
			}
		}
		testwait.None(t, answered, "a result of a call going on past its session")
		stop(errStop)
		for i, ctx := range ctxs {
			<-ctx.Done() // the contexts' end is synchronous with stop
			if cause := context.Cause(ctx); !errors.Is(cause, errStop) {
				t.Errorf("call %d ended with %v, want the agent's stop", i, cause)
			}
			if testwait.Recv(t, answered, 10*time.Second, "the call's end") {
				t.Error("a call that outlived its session is answered")
			}
		}
	})
	t.Run("finish past the session", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		ctxs, answered := callsAtEnd(t, t.Context(), nil, release)
		close(release)
		for range ctxs {
			if testwait.Recv(t, answered, 10*time.Second, "the call's end") {
				t.Error("a call that finished after its session ended is answered")
			}
		}
	})
	for _, tt := range []struct {
		name     string
		calls    context.Context
		endServe error
		want     error
	}{
		{"without Calls", nil, nil, ErrSessionEnded},
		{"Serve's context", t.Context(), errServe, errServe},
		{"Serve's context without Calls", nil, errServe, errServe},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctxs, answered := callsAtEnd(t, tt.calls, tt.endServe, nil)
			for i, ctx := range ctxs {
				if cause := context.Cause(ctx); !errors.Is(cause, tt.want) {
					t.Errorf("call %d ended with %v, want %v", i, cause, tt.want)
				}
				if testwait.Recv(t, answered, 10*time.Second, "the call's end") {
					t.Error("a call its session's end ended is answered")
				}
			}
		})
	}
}

// A long lease does not keep a silent session "connected": the keeper
// renews every SilenceLimit/3 and gives up after SilenceLimit without a
// frame, whatever TTL the gateway granted.
func TestKeepLeaseSilenceLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, frames := newTestSession(time.Minute, 0, nil, nil)
		start := time.Now()
		done := keep(t.Context(), s)
		time.Sleep(SilenceLimit - time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("KeepLease returned %v before SilenceLimit", err)
		default:
		}
		// At SilenceLimit/3 and 2·SilenceLimit/3; the third would be due
		// with the end.
		if n := len(frames); n != 2 {
			t.Errorf("%d renewals in SilenceLimit, want 2", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, ErrLeaseExpired) {
				t.Errorf("KeepLease = %v, want ErrLeaseExpired", err)
			}
			if d := time.Since(start); d != SilenceLimit {
				t.Errorf("gave up after %v, want %v", d, SilenceLimit)
			}
		default:
			t.Fatal("KeepLease still running after SilenceLimit of silence")
		}
	})
}

// Probe renews at once and reports whether the gateway answered within
// ProbeTimeout.
func TestProbe(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, frames := newTestSession(time.Minute, 0, nil, nil)
		go func() {
			<-frames
			time.Sleep(10 * time.Millisecond)
			s.Alive()
		}()
		if err := s.Probe(t.Context()); err != nil {
			t.Errorf("Probe answered = %v, want nil", err)
		}
		start := time.Now()
		err := s.Probe(t.Context())
		if !errors.Is(err, ErrLeaseExpired) || time.Since(start) != ProbeTimeout {
			t.Errorf("Probe unanswered = %v after %v, want ErrLeaseExpired after %v", err, time.Since(start), ProbeTimeout)
		}
		if f := <-frames; f.GetLeaseRenewal().GetSequence() != 2 {
			t.Errorf("second probe sent %v, want renewal 2", f)
		}
	})
	sendErr := errors.New("no route")
	s, _ := newTestSession(time.Minute, 0, nil, sendErr)
	if err := s.Probe(t.Context()); !errors.Is(err, sendErr) {
		t.Errorf("Probe with a failing send = %v, want %v", err, sendErr)
	}
}
