package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/leakcheck"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// never is a head start that does not run out during a test.
const never = time.Hour

// fakeConn is a registered session that records its Close.
type fakeConn struct {
	name   string
	closed atomic.Int32
}

func (c *fakeConn) Welcome() *nodev1.Welcome                                 { return &nodev1.Welcome{} }
func (c *fakeConn) Address() string                                          { return c.name }
func (c *fakeConn) Serve(ctx context.Context) error                          { <-ctx.Done(); return ctx.Err() }
func (c *fakeConn) SendCapabilities([]*nodev1.Capability) error              { return nil }
func (c *fakeConn) SendEvent(*nodev1.NodeEvent) error                        { return nil }
func (c *fakeConn) Close() error                                             { c.closed.Add(1); return nil }
func (c *fakeConn) RenewCertificate(context.Context, []byte) ([]byte, error) { return nil, nil }
func (c *fakeConn) String() string                                           { return c.name }

// fakeDial is a dialer that counts its calls and records whether its
// attempt was cancelled.
type fakeDial struct {
	calls, cancelled atomic.Int32
	dial             func(ctx context.Context) (carrier.Conn, error)
}

func (f *fakeDial) fn(ctx context.Context, _ carrier.Config) (carrier.Conn, error) {
	f.calls.Add(1)
	c, err := f.dial(ctx)
	if ctx.Err() != nil {
		f.cancelled.Add(1)
	}
	return c, err
}

// up connects at once.
func up(c carrier.Conn) *fakeDial {
	return &fakeDial{dial: func(context.Context) (carrier.Conn, error) { return c, nil }}
}

// fails fails at once with err.
func fails(err error) *fakeDial {
	return &fakeDial{dial: func(context.Context) (carrier.Conn, error) { return nil, err }}
}

// hangs waits until its attempt is cancelled; then, with c, it connects
// anyway (as a registration that crossed the cancel does), else it fails.
func hangs(c carrier.Conn) *fakeDial {
	return &fakeDial{dial: func(ctx context.Context) (carrier.Conn, error) {
		<-ctx.Done()
		if c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("dialing: %w", ctx.Err())
	}}
}

func runRace(t *testing.T, quic, grpc *fakeDial, headStart time.Duration) (dialed, error) {
	t.Helper()
	c := carriers{quic: quic.fn, grpc: grpc.fn, headStart: headStart}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return c.race(ctx, carrier.Config{}, slog.New(slog.DiscardHandler))
}

func TestRaceQUICUpWithinHeadStart(t *testing.T) {
	q := &fakeConn{name: "quic"}
	quic, grpc := up(q), up(&fakeConn{name: "grpc"})
	d, err := runRace(t, quic, grpc, never)
	if err != nil || d.conn != q || d.transport != wire.TransportQUIC || d.reason != "" || d.detail != "" {
		t.Fatalf("race = %+v, %v; want the QUIC session and no reason", d, err)
	}
	if n := grpc.calls.Load(); n != 0 {
		t.Errorf("gRPC was dialed %d times though QUIC was up within its head start", n)
	}
	if q.closed.Load() != 0 {
		t.Error("the winning session was closed")
	}
}

func TestRaceGRPCWinsWhenQUICHangs(t *testing.T) {
	g := &fakeConn{name: "grpc"}
	quic, grpc := hangs(nil), up(g)
	d, err := runRace(t, quic, grpc, time.Millisecond)
	if err != nil || d.conn != g || d.transport != wire.TransportGRPC {
		t.Fatalf("race = %+v, %v; want the gRPC session", d, err)
	}
	if want := "QUIC (UDP) did not answer within 1 ms; using TCP"; d.reason != want {
		t.Errorf("reason = %q, want %q", d.reason, want)
	}
	if d.detail == "" {
		t.Error("no detail for the log and --json")
	}
	if quic.cancelled.Load() != 1 {
		t.Error("the QUIC attempt was not cancelled once gRPC won")
	}
	if !d.quicSlow {
		t.Error("QUIC, cancelled while still trying, is not marked slow (to be probed soon)")
	}
}

// QUIC that fails at once does not make gRPC wait out the head start, and
// the reason says how it failed.
func TestRaceQUICRefusedStartsGRPCAtOnce(t *testing.T) {
	g := &fakeConn{name: "grpc"}
	refused := fmt.Errorf("dialing gateway over QUIC at 127.0.0.1:1: %w", syscall.ECONNREFUSED)
	d, err := runRace(t, fails(refused), up(g), never)
	if err != nil || d.conn != g {
		t.Fatalf("race = %+v, %v; want the gRPC session", d, err)
	}
	if d.reason != "QUIC (UDP) was refused; using TCP" || !strings.Contains(d.detail, "127.0.0.1:1") {
		t.Errorf("reason %q, detail %q", d.reason, d.detail)
	}
	if d.quicSlow {
		t.Error("QUIC that failed is marked only slow")
	}
}

func TestRaceVerdictEndsIt(t *testing.T) {
	revoked := fmt.Errorf("dialing: %w", carrier.ErrRevoked)
	t.Run("from QUIC", func(t *testing.T) {
		grpc := up(&fakeConn{})
		_, err := runRace(t, fails(revoked), grpc, never)
		if !errors.Is(err, carrier.ErrRevoked) {
			t.Fatalf("race error = %v, want the revocation", err)
		}
		if grpc.calls.Load() != 0 {
			t.Error("gRPC was dialed after the gateway's verdict")
		}
	})
	t.Run("from gRPC", func(t *testing.T) {
		quic := hangs(nil)
		_, err := runRace(t, quic, fails(fmt.Errorf("registering: %w", carrier.ErrRegistrationRefused)), time.Millisecond)
		if !errors.Is(err, carrier.ErrRegistrationRefused) {
			t.Fatalf("race error = %v, want the refusal", err)
		}
		if quic.cancelled.Load() != 1 {
			t.Error("the QUIC attempt was not cancelled by the verdict")
		}
	})
	t.Run("after a winner", func(t *testing.T) {
		// gRPC registers, then QUIC's attempt, already past its cancel,
		// comes back revoked: the verdict stands and the winner is closed.
		g := &fakeConn{name: "grpc"}
		release := make(chan struct{})
		quic := &fakeDial{dial: func(context.Context) (carrier.Conn, error) { <-release; return nil, revoked }}
		grpc := &fakeDial{dial: func(context.Context) (carrier.Conn, error) { defer close(release); return g, nil }}
		_, err := runRace(t, quic, grpc, time.Millisecond)
		if !errors.Is(err, carrier.ErrRevoked) {
			t.Fatalf("race error = %v, want the revocation", err)
		}
		if g.closed.Load() != 1 {
			t.Errorf("the gRPC session was closed %d times, want 1", g.closed.Load())
		}
	})
}

// A busy gateway reached over QUIC asked for a wait: the race ends with it
// and does not fall back to gRPC, which reaches the same store, even when
// the answer comes after the head start.
func TestRaceBusyStaysOnQUIC(t *testing.T) {
	busy := fmt.Errorf("registering: %w", carrier.Busy(4*time.Second, "gateway busy; retry in 4 s"))
	t.Run("within the head start", func(t *testing.T) {
		grpc := up(&fakeConn{})
		_, err := runRace(t, fails(busy), grpc, never)
		if wait, ok := carrier.RetryAfter(err); !ok || wait != 4*time.Second {
			t.Fatalf("race error = %v, want the gateway's wait of 4 s", err)
		}
		if grpc.calls.Load() != 0 {
			t.Error("gRPC was dialed for a busy gateway")
		}
	})
	t.Run("after the head start", func(t *testing.T) {
		release := make(chan struct{})
		quic := &fakeDial{dial: func(context.Context) (carrier.Conn, error) { <-release; return nil, busy }}
		grpc := hangs(nil)
		grpc.dial = func(ctx context.Context) (carrier.Conn, error) {
			close(release) // QUIC answers once gRPC is under way
			<-ctx.Done()
			return nil, ctx.Err()
		}
		_, err := runRace(t, quic, grpc, time.Millisecond)
		if !errors.Is(err, carrier.ErrGatewayBusy) {
			t.Fatalf("race error = %v, want the busy answer", err)
		}
		if grpc.cancelled.Load() != 1 {
			t.Error("the gRPC attempt was not cancelled by the busy answer")
		}
	})
}

// A loser that registered anyway replaced the winner at the gateway: the
// race keeps it and closes the winner.
func TestRaceLoserConnectedAnyway(t *testing.T) {
	q, g := &fakeConn{name: "quic"}, &fakeConn{name: "grpc"}
	d, err := runRace(t, hangs(q), up(g), time.Millisecond)
	if err != nil || d.conn != q || d.transport != wire.TransportQUIC {
		t.Fatalf("race = %+v, %v; want the later (QUIC) session", d, err)
	}
	if g.closed.Load() != 1 || q.closed.Load() != 0 {
		t.Errorf("closed: gRPC %d times, QUIC %d times; want 1 and 0", g.closed.Load(), q.closed.Load())
	}
}

func TestRaceBothFail(t *testing.T) {
	quic := fails(errors.New("quic: timeout: no recent network activity"))
	grpc := fails(errors.New("tcp: connection reset"))
	_, err := runRace(t, quic, grpc, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no recent network activity") || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("race error = %v, want both carriers' errors", err)
	}
}

// The probe interval stays within its jitter, and doubles with each
// failed probe up to quicProbeBackoff times the configured one.
func TestProbeInterval(t *testing.T) {
	a := &Agent{cfg: Config{QUICProbeInterval: 10 * time.Second}}
	for failed, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 40 * time.Second} {
		if failed == 4 {
			failed = 1000 // no overflow however long a node stays on gRPC
		}
		for range 100 {
			if d := a.probeInterval(failed); d < want*8/10 || d > want*12/10 {
				t.Fatalf("probe interval after %d failed probes is %v, outside %v ± 20%%", failed, d, want)
			}
		}
	}
	a.cfg.QUICProbeInterval = 0
	if d := a.probeInterval(0); d < DefaultQUICProbeInterval*8/10 || d > DefaultQUICProbeInterval*12/10 {
		t.Fatalf("default probe interval %v", d)
	}
}

// reaches is a QUIC dial whose handshake completes at once (it calls
// Config.Reached) and whose registration then takes until release is
// closed: a gateway slow to register in a storm.
func reaches(c carrier.Conn, release <-chan struct{}) *fakeDial {
	f := &fakeDial{}
	f.dial = func(ctx context.Context) (carrier.Conn, error) {
		select {
		case <-release:
			return c, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f
}

// A slow registration after a completed handshake is waited for: gRPC is
// not dialed (or is cancelled if the head start had it under way), and the
// node stays on QUIC.
func TestRaceSlowRegistrationStaysOnQUIC(t *testing.T) {
	for _, tt := range []struct {
		name      string
		headStart time.Duration
	}{{"handshake within the head start", never}, {"handshake after the head start", time.Millisecond}} {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeConn{name: "quic"}
			release := make(chan struct{})
			quic := reaches(q, release)
			grpcStarted, grpcCancelled := make(chan struct{}), make(chan struct{})
			grpc := &fakeDial{dial: func(ctx context.Context) (carrier.Conn, error) {
				close(grpcStarted)
				<-ctx.Done()
				close(grpcCancelled)
				return nil, ctx.Err()
			}}
			c := carriers{quic: func(ctx context.Context, cfg carrier.Config) (carrier.Conn, error) {
				if tt.headStart != never {
					<-grpcStarted // the head start ran out before the handshake completed
				}
				cfg.Reached()
				go func() {
					if tt.headStart != never {
						// Registered once gRPC gave way (or the race's
						// deadline, if it never does).
						select {
						case <-grpcCancelled:
						case <-ctx.Done():
						}
					}
					close(release)
				}()
				return quic.fn(ctx, cfg)
			}, grpc: grpc.fn, headStart: tt.headStart}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			d, err := c.race(ctx, carrier.Config{}, slog.New(slog.DiscardHandler))
			if err != nil || d.transport != wire.TransportQUIC || d.conn != q {
				t.Fatalf("race = %+v, %v; want the QUIC session", d, err)
			}
			if tt.headStart == never && grpc.calls.Load() != 0 {
				t.Error("gRPC was dialed although QUIC's handshake had completed")
			}
			if tt.headStart != never && grpc.cancelled.Load() != 1 {
				t.Error("the gRPC attempt was not cancelled when QUIC's handshake completed")
			}
		})
	}
}

// A registration that times out after a completed handshake is not
// retried over gRPC: UDP works, the gateway is only slow.
func TestRaceRegistrationTimeoutAfterHandshakeStaysOnQUIC(t *testing.T) {
	timeout := errors.New("waiting for welcome: deadline exceeded")
	grpc := up(&fakeConn{})
	c := carriers{quic: func(ctx context.Context, cfg carrier.Config) (carrier.Conn, error) {
		cfg.Reached()
		return nil, timeout
	}, grpc: grpc.fn, headStart: never}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.race(ctx, carrier.Config{}, slog.New(slog.DiscardHandler)); !errors.Is(err, timeout) {
		t.Fatalf("race error = %v, want QUIC's", err)
	}
	if grpc.calls.Load() != 0 {
		t.Error("gRPC was dialed after QUIC's handshake had completed")
	}
}

// A refused connection (CONNECTION_REFUSED: the gateway's cap on handshakes,
// quic-go's full accept queue) proves UDP works: the race ends with it and
// gRPC is not dialed, or is cancelled.
func TestRaceConnectionRefusedStaysOnQUIC(t *testing.T) {
	refused := fmt.Errorf("dialing: %w", carrier.ErrConnectionRefused)
	grpc := up(&fakeConn{})
	_, err := runRace(t, fails(refused), grpc, never)
	if !errors.Is(err, carrier.ErrConnectionRefused) {
		t.Fatalf("race error = %v, want the refusal", err)
	}
	if grpc.calls.Load() != 0 {
		t.Error("gRPC was dialed for a gateway that refused the QUIC connection for now")
	}
}

// After a GoAway over QUIC (quicProven), an attempt dials QUIC alone: a
// gateway slow to answer (its nodes all coming back at once) is waited
// for past the head start, and a QUIC failure is the attempt's failure,
// not a reason to take gRPC.
func TestRaceQUICProvenDialsQUICAlone(t *testing.T) {
	t.Run("slow", func(t *testing.T) {
		q := &fakeConn{name: "quic"}
		grpc := up(&fakeConn{name: "grpc"})
		// QUIC registers only after the head start has long run out.
		quic := &fakeDial{dial: func(ctx context.Context) (carrier.Conn, error) {
			timer := time.NewTimer(200 * time.Millisecond)
			defer timer.Stop()
			select {
			case <-timer.C:
				return q, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
		c := carriers{quic: quic.fn, grpc: grpc.fn, headStart: time.Millisecond, quicProven: true}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		d, err := c.race(ctx, carrier.Config{}, slog.New(slog.DiscardHandler))
		if err != nil || d.conn != q || d.transport != wire.TransportQUIC {
			t.Fatalf("race = %+v, %v; want the QUIC session", d, err)
		}
		if n := grpc.calls.Load(); n != 0 {
			t.Errorf("gRPC was dialed %d times after QUIC was proven", n)
		}
	})
	t.Run("failed", func(t *testing.T) {
		timeout := errors.New("timeout: no recent network activity")
		grpc := up(&fakeConn{name: "grpc"})
		c := carriers{quic: fails(timeout).fn, grpc: grpc.fn, headStart: never, quicProven: true}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := c.race(ctx, carrier.Config{}, slog.New(slog.DiscardHandler)); !errors.Is(err, timeout) {
			t.Fatalf("race error = %v, want QUIC's", err)
		}
		if n := grpc.calls.Load(); n != 0 {
			t.Errorf("gRPC was dialed %d times after QUIC was proven", n)
		}
	})
	// The control: without the proof, the same slow QUIC loses to gRPC.
	t.Run("unproven", func(t *testing.T) {
		grpc := up(&fakeConn{name: "grpc"})
		d, err := runRace(t, hangs(nil), grpc, time.Millisecond)
		if err != nil || d.transport != wire.TransportGRPC {
			t.Fatalf("race = %+v, %v; want the gRPC session", d, err)
		}
	})
}

// A node on gRPC because QUIC was only slower probes QUIC after
// quicSlowProbe, not after the (here hour-long) probe interval.
func TestProbeSoonAfterSlowQUIC(t *testing.T) {
	q := &fakeConn{name: "quic"}
	quic := up(q)
	a := &Agent{cfg: Config{QUICProbeInterval: never, Logger: slog.New(slog.DiscardHandler)}, carriers: carriers{quic: quic.fn}}
	done := make(chan carrier.Conn, 1)
	go func() {
		conn, err := a.probeQUIC(t.Context(), carrier.Config{}, func() carrier.Config { return carrier.Config{} }, true)
		if err != nil {
			t.Error(err)
		}
		done <- conn
	}()
	if conn := testwait.Recv(t, done, 2*quicSlowProbe, "the first probe"); conn != q {
		t.Fatalf("probe returned %v, want the QUIC session", conn)
	}
}

// A GoAway over QUIC proves UDP for its window and a grace past it (a
// minute, or four windows if longer), not for ever; no GoAway proves
// nothing.
func TestQUICProofLastsTheWindowAndGrace(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if (quicProof{}).holds(now) {
		t.Error("the zero proof holds")
	}
	for _, c := range []struct{ within, grace time.Duration }{
		{15 * time.Second, time.Minute},
		{25 * time.Second, 100 * time.Second},
	} {
		p := goAwayProof(now, c.within)
		for _, at := range []time.Duration{0, c.within, c.within + c.grace - time.Millisecond} {
			if !p.holds(now.Add(at)) {
				t.Errorf("a GoAway asking for a return within %v does not hold %v later", c.within, at)
			}
		}
		if p.holds(now.Add(c.within + c.grace)) {
			t.Errorf("a GoAway asking for a return within %v still holds %v later", c.within, c.within+c.grace)
		}
	}
}

// replacedConn is a gRPC session the gateway ends as replaced once a QUIC
// session has registered.
type replacedConn struct {
	fakeConn
	replaced <-chan struct{}
}

func (c *replacedConn) Serve(ctx context.Context) error {
	select {
	case <-c.replaced:
		return carrier.ErrReplaced
	case <-ctx.Done():
		return ctx.Err()
	}
}

// After a node moves from gRPC to QUIC, nothing in Run keeps the gRPC
// session: it is garbage once the gateway has ended it, rather than held
// (with its connection's buffers) for as long as the QUIC session lasts.
func TestMovedToQUICReleasesTheGRPCSession(t *testing.T) {
	a, _, _ := blockingAgent(t)
	a.cfg.QUICProbeInterval = time.Millisecond
	a.cert = longLivedCertificate(t)
	a.certFrom, a.certUntil = a.cert.Leaf.NotBefore, a.cert.Leaf.NotAfter
	a.ca, a.conf.Gateways = a.cert.Leaf, []string{"gateway.test:7443"}
	replaced := make(chan struct{})
	q := &fakeConn{name: "quic"}
	var quicDials atomic.Int32
	released := make(chan struct{})
	a.carriers = carriers{
		headStart: never,
		// The first attempt fails, so gRPC is dialed at once; the probe
		// after it registers, and the gateway replaces the gRPC session.
		quic: func(context.Context, carrier.Config) (carrier.Conn, error) {
			if quicDials.Add(1) == 1 {
				return nil, errors.New("no answer over UDP")
			}
			close(replaced)
			return q, nil
		},
		grpc: func(context.Context, carrier.Config) (carrier.Conn, error) {
			g := &replacedConn{fakeConn: fakeConn{name: "grpc"}, replaced: replaced}
			runtime.AddCleanup(g, func(ch chan struct{}) { close(ch) }, released)
			return g, nil
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan error, 1)
	go func() { ended <- a.Run(ctx) }()
	testwait.Recv(t, replaced, 10*time.Second, "the QUIC probe")
	for i := 0; ; i++ {
		runtime.GC()
		select {
		case <-released:
		case <-time.After(100 * time.Millisecond):
			if i < 100 {
				continue
			}
			t.Fatal("the gRPC session is still reachable 10 s after the move to QUIC")
		}
		break
	}
	if st := a.Status(); st.State != StateConnected || st.Transport != wire.TransportQUIC {
		t.Errorf("status after the move: %s over %q, want connected over QUIC", st.State, st.Transport)
	}
	cancel()
	if err := testwait.Recv(t, ended, 10*time.Second, "Run's end"); err != nil {
		t.Errorf("Run ended with %v", err)
	}
}

// longLivedCertificate is a self-signed certificate whose renewal is hours
// away, for an agent whose sessions are fakes.
func longLivedCertificate(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// After a failed attempt soon after a GoAway the node waits within the
// first half of the window, and a GoAway that asked for no window still
// spreads the attempts over the backoff's first interval rather than
// retrying at once, again and again. Failures are retried so for one
// window; the proof of UDP lasts a minute longer.
func TestQUICProofRetryWait(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct{ within, spread time.Duration }{
		{10 * time.Second, 5 * time.Second},
		{0, carrier.BackoffStart},
	} {
		p := goAwayProof(now, c.within)
		var longest time.Duration
		for range 200 {
			w := p.retryWait()
			if w < 0 || w > c.spread {
				t.Fatalf("window %v: a wait of %v, outside [0, %v]", c.within, w, c.spread)
			}
			longest = max(longest, w)
		}
		if longest < c.spread/4 {
			t.Errorf("window %v: 200 waits, none longer than %v; want them spread over [0, %v]", c.within, longest, c.spread)
		}
	}
	p := goAwayProof(now, 10*time.Second)
	for _, c := range []struct {
		after       time.Duration
		fast, holds bool
	}{
		{0, true, true},
		{9 * time.Second, true, true},
		{10 * time.Second, false, true},
		{69 * time.Second, false, true},
		{70 * time.Second, false, false},
	} {
		if fast, holds := p.fast(now.Add(c.after)), p.holds(now.Add(c.after)); fast != c.fast || holds != c.holds {
			t.Errorf("%v after a GoAway asking for 10 s: retried soon %v, proof holds %v; want %v, %v", c.after, fast, holds, c.fast, c.holds)
		}
	}
}
