package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/grpccarrier"
	"github.com/palyra/palyra-go/node/quiccarrier"
)

const (
	// quicHeadStart is how long QUIC may take alone before gRPC over TCP is
	// dialed beside it. A QUIC handshake with a reachable gateway takes one
	// round trip; 250 ms covers slow links while keeping the wait on a
	// network that drops UDP short.
	quicHeadStart = 250 * time.Millisecond
	// DefaultQUICProbeInterval is how often a node connected over gRPC
	// tries QUIC again (Config.QUICProbeInterval), give or take
	// quicProbeJitter. A probe on a network that still drops UDP costs a
	// few Initial packets and one goroutine for quicProbeTimeout, so twice
	// a minute is cheap, and a laptop that leaves the café is back on QUIC
	// within about half a minute. It is the gateway's default lease TTL:
	// the session is that old before it is ever probed.
	DefaultQUICProbeInterval = 30 * time.Second
	// quicProbeJitter spreads the probes (±20%), so nodes that fell back
	// together do not probe together.
	quicProbeJitter = 0.2
	// quicProbeTimeout bounds one probe: a gateway that answers does so in
	// a round trip or two.
	quicProbeTimeout = 5 * time.Second
	// quicSlowProbe is when a node that took gRPC only because QUIC was
	// slower than the head start (it had not failed) probes QUIC first,
	// give or take quicProbeJitter: when a crowd of nodes connects at once
	// the gateway answers QUIC within seconds, and a node should not stay
	// on TCP for the whole probe interval for it. On a network that drops
	// UDP silently this costs one probe more.
	quicSlowProbe = 5 * time.Second
)

// dialFunc dials one carrier and returns a registered session.
type dialFunc func(context.Context, carrier.Config) (carrier.Conn, error)

// carriers are the two ways to the gateway, QUIC first; tests replace them.
type carriers struct {
	quic, grpc dialFunc
	headStart  time.Duration
	// quicProven says the gateway reached this node over QUIC shortly
	// before this attempt (a session over QUIC ended with its GoAway, and
	// no session or network change since: quicProof): UDP works, so
	// the attempt dials QUIC alone, however long the gateway takes, and
	// takes no gRPC fallback for a gateway slowed by its nodes' returns.
	quicProven bool
}

// realCarriers dials the real QUIC and gRPC carriers.
var realCarriers = carriers{
	quic:      func(ctx context.Context, cfg carrier.Config) (carrier.Conn, error) { return quiccarrier.Dial(ctx, cfg) },
	grpc:      func(ctx context.Context, cfg carrier.Config) (carrier.Conn, error) { return grpccarrier.Dial(ctx, cfg) },
	headStart: quicHeadStart,
}

// dialed is a registered session and how it was reached.
type dialed struct {
	conn      carrier.Conn
	transport string
	// reason says in a few words why the session is not over QUIC; detail
	// is the full error chain. Both are empty over QUIC.
	reason, detail string
	// quicSlow says QUIC was still trying when gRPC registered: it had not
	// failed, only been slower (probeQUIC probes soon).
	quicSlow bool
}

// attempt is one carrier's dial outcome.
type attempt struct {
	transport string
	conn      carrier.Conn
	err       error
}

// race dials QUIC and, unless it is registered within the head start (or
// as soon as it fails), gRPC over TCP beside it: happy eyeballs. The first
// registered session wins and the other attempt is cancelled. Should the
// other connect anyway, the later of the two is kept: registering replaced
// the earlier one at the gateway, which closed it. The gateway's verdict
// on this device (carrier.IsVerdict) from either attempt ends the race with
// that verdict.
//
// gRPC is the fallback for networks that drop UDP, so it is not taken for
// an answer that proves UDP works: once QUIC's handshake is done
// (carrier.Config.Reached), a registration that is merely slow (a gateway
// busy with a storm of reconnects) is waited for and a gRPC attempt under
// way is cancelled; and a gateway that refuses the connection for now or
// answers busy (carrier.ProvesQUIC) ends the race with that answer, the
// agent coming back on QUIC after the wait. With quicProven there is no
// gRPC attempt at all. race returns once every attempt is over.
func (c carriers) race(ctx context.Context, cfg carrier.Config, log *slog.Logger) (dialed, error) {
	quicCtx, cancelQUIC := context.WithCancel(ctx)
	defer cancelQUIC()
	// gRPC's attempt gets its context when it starts, so a QUIC handshake
	// that completed before it does not cancel it in advance.
	cancelGRPC := func() {}
	defer func() { cancelGRPC() }()
	results := make(chan attempt, 2)
	start := func(ctx context.Context, transport string, dial dialFunc, cfg carrier.Config) {
		go func() {
			conn, err := dial(ctx, cfg)
			results <- attempt{transport, conn, err}
		}()
	}
	reached := make(chan struct{})
	var reachedOnce sync.Once
	quicCfg := cfg
	quicCfg.Reached = func() { reachedOnce.Do(func() { close(reached) }) }
	start(quicCtx, wire.TransportQUIC, c.quic, quicCfg)
	running := 1
	head := time.NewTimer(c.headStart)
	defer head.Stop()
	headC, reachedC := head.C, (<-chan struct{})(reached)
	if c.quicProven {
		headC = nil
	}
	var (
		won              *attempt
		verdict          error
		quicErr, grpcErr error
		quicLate         bool
		quicReached      bool
		grpcStarted      bool
		// grpcDropped: the gRPC attempt was cancelled for QUIC's
		// handshake, so its error says nothing.
		grpcDropped bool
	)
	startGRPC := func() {
		headC = nil
		if !grpcStarted && won == nil && verdict == nil {
			grpcStarted = true
			running++
			var grpcCtx context.Context
			grpcCtx, cancelGRPC = context.WithCancel(ctx)
			start(grpcCtx, wire.TransportGRPC, c.grpc, cfg)
		}
	}
	for running > 0 {
		select {
		case <-headC:
			quicLate = true
			startGRPC()
		case <-reachedC:
			reachedC, headC = nil, nil
			quicReached = true
			if won == nil && grpcStarted {
				cancelGRPC() // the path works: wait for QUIC's registration
				grpcDropped = true
			}
		case r := <-results:
			running--
			switch {
			case r.err == nil && (won != nil || verdict != nil):
				if verdict != nil {
					closeLoser(log, r)
					continue
				}
				// Both registered: the later one is the gateway's.
				closeLoser(log, *won)
				won = &r
			case r.err == nil:
				won = &r
				headC = nil // no gRPC attempt if QUIC won in its head start
				cancelQUIC()
				cancelGRPC()
			case carrier.EndsAttempt(r.err) || carrier.ProvesQUIC(r.err):
				if verdict == nil {
					verdict = r.err
				}
				headC = nil
				cancelQUIC()
				cancelGRPC()
				if won != nil {
					closeLoser(log, *won)
					won = nil
				}
			case won != nil, r.transport == wire.TransportGRPC && grpcDropped:
				// Cancelled: its error says only that.
			case r.transport == wire.TransportQUIC:
				quicErr = r.err
				// QUIC failed: TCP need not wait out the head start, unless
				// QUIC's handshake had completed: then UDP works and the
				// gateway was only slow to register (its store is busy
				// with a storm), which TCP would not make faster. The next
				// attempt tries QUIC again, and falls back if UDP stopped
				// getting through meanwhile.
				if !quicReached && !c.quicProven {
					startGRPC()
				}
			default:
				grpcErr = r.err
			}
		}
	}
	switch {
	case verdict != nil:
		return dialed{}, verdict
	case won != nil && won.transport == wire.TransportQUIC:
		return dialed{conn: won.conn, transport: wire.TransportQUIC}, nil
	case won != nil:
		d := dialed{conn: won.conn, transport: wire.TransportGRPC, quicSlow: quicErr == nil}
		d.reason, d.detail = fallbackReason(quicErr, quicLate, c.headStart)
		log.Warn("connected over gRPC (TCP): QUIC (UDP) did not connect", "reason", d.reason, "quic_err", d.detail)
		return d, nil
	case ctx.Err() != nil:
		return dialed{}, fmt.Errorf("dialing the gateway: %w", context.Cause(ctx))
	case grpcErr == nil:
		return dialed{}, quicErr
	default:
		return dialed{}, fmt.Errorf("%w; gRPC fallback: %w", quicErr, grpcErr)
	}
}

// closeLoser closes a session the race does not keep.
func closeLoser(log *slog.Logger, a attempt) {
	log.Info("closing the session the carrier race did not keep", "transport", a.transport)
	if err := a.conn.Close(); err != nil {
		log.Debug("closing an unused session", "transport", a.transport, "err", err)
	}
}

// fallbackReason says in a few words why the node uses TCP, and in full.
// quicErr is QUIC's failure, nil if it was still trying when gRPC won;
// late is set when QUIC was not up within the head start.
func fallbackReason(quicErr error, late bool, headStart time.Duration) (reason, detail string) {
	within := fmt.Sprintf("within %d ms", headStart.Milliseconds())
	switch {
	case quicErr == nil:
		return "QUIC (UDP) did not answer " + within + "; using TCP",
			"QUIC (UDP) was not connected " + within + ", and was cancelled once gRPC (TCP) was"
	case errors.Is(quicErr, syscall.ECONNREFUSED):
		return "QUIC (UDP) was refused; using TCP", quicErr.Error()
	case late:
		return "QUIC (UDP) did not answer " + within + "; using TCP", quicErr.Error()
	default:
		return "QUIC (UDP) failed; using TCP", quicErr.Error()
	}
}

// dial connects over whichever carrier registers first (carriers.race);
// quicProven: over QUIC only.
func (a *Agent) dial(ctx context.Context, cfg carrier.Config, quicProven bool) (dialed, error) {
	c := a.carriers
	c.quicProven = quicProven
	return c.race(ctx, cfg, a.cfg.Logger)
}

// quicProbeBackoff is how far failed probes stretch the interval: it
// doubles after each, up to this many times the configured one, so a
// node that stays on a network that drops UDP probes every two minutes
// or so, not every thirty seconds forever, and one that moves to a
// network with UDP still finds it within a few minutes.
const quicProbeBackoff = 4

// probeInterval is the wait before the next QUIC probe after failed
// probes that failed: the configured interval, doubled for each failure
// up to quicProbeBackoff times it, ± quicProbeJitter.
func (a *Agent) probeInterval(failed int) time.Duration {
	base := a.cfg.QUICProbeInterval
	if base <= 0 {
		base = DefaultQUICProbeInterval
	}
	base *= time.Duration(min(1<<min(failed, 8), quicProbeBackoff))
	return jitter(base)
}

// jitter is d ± quicProbeJitter, drawn at random.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - quicProbeJitter + 2*quicProbeJitter*mathrand.Float64()))
}

// probeQUIC dials QUIC now and then until one registers, ctx ends, or the
// gateway's verdict comes back; it returns the QUIC session or the
// verdict. register builds the registration at each probe, so it carries
// the current manifest. With slow (QUIC had only been slower than gRPC)
// the first probe comes after quicSlowProbe, and its failure does not
// stretch the interval.
func (a *Agent) probeQUIC(ctx context.Context, cfg carrier.Config, register func() carrier.Config, slow bool) (carrier.Conn, error) {
	var busyWait time.Duration
	for failed := 0; ; failed++ {
		wait := a.probeInterval(failed)
		if slow {
			slow, failed = false, failed-1
			wait = jitter(quicSlowProbe)
		}
		// A busy gateway named its wait; a probe does not come sooner.
		timer := time.NewTimer(max(wait, busyWait))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		pctx, cancel := context.WithTimeout(ctx, quicProbeTimeout)
		conn, err := a.carriers.quic(pctx, register())
		cancel()
		switch {
		case err == nil:
			return conn, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case carrier.IsVerdict(err):
			return nil, err
		}
		busyWait, _ = carrier.RetryAfter(err)
		a.cfg.Logger.Debug("QUIC probe failed; staying on gRPC", "err", err)
	}
}

// session serves d until it ends. While it is over gRPC, it probes QUIC
// (probeQUIC) and moves to the QUIC session when one registers: the
// gateway then routes new calls to it and closes the gRPC session once
// the calls it runs are done, which this node keeps serving until then.
// cfg is the configuration d was dialed with. It returns the address of
// the gateway the last session was with, and why that one ended.
func (a *Agent) session(ctx context.Context, d dialed, cfg carrier.Config, capsVersion int) (endedAt string, err error) {
	endedAt = d.conn.Address()
	if d.transport != wire.TransportGRPC {
		return endedAt, a.serve(ctx, d.conn, capsVersion)
	}
	quic, version, oldEnded, err := a.serveGRPCUntilQUIC(ctx, d.conn, d.quicSlow, cfg, capsVersion)
	if quic == nil {
		return endedAt, err
	}
	err = a.movedToQUIC(ctx, quic, version)
	oldEnded()
	return quic.Address(), err
}

// serveGRPCUntilQUIC serves conn, a gRPC session, while probing QUIC
// (session). When a QUIC session registers it returns that, with the
// capabilities version it registered and oldEnded, which stops serving
// conn (the gateway has ended it by then, unless the QUIC session ended
// first) and waits for that. Otherwise it returns why the gRPC session
// ended. Nothing that outlives it holds conn but the goroutine serving
// it.
func (a *Agent) serveGRPCUntilQUIC(ctx context.Context, conn carrier.Conn, quicSlow bool, cfg carrier.Config, capsVersion int) (quic carrier.Conn, version int, oldEnded func(), err error) {
	// QUIC is probed at the gateway the session is on first: the others
	// would answer too, but it is this gateway's session that QUIC is to
	// replace.
	if on := conn.Address(); on != "" {
		cfg.Addresses = append([]string{on}, slices.DeleteFunc(slices.Clone(cfg.Addresses), func(s string) bool { return s == on })...)
	}
	// The old session's Serve outlives the switch until the gateway ends
	// it; wait for it before returning.
	oldDone := make(chan error, 1)
	serveCtx, stopServing := context.WithCancel(ctx)
	go func() { oldDone <- a.serve(serveCtx, conn, capsVersion) }()

	probeCtx, stopProbing := context.WithCancel(ctx)
	defer stopProbing()
	probed := make(chan probeResult, 1)
	go func() {
		conn, err := a.probeQUIC(probeCtx, cfg, func() carrier.Config {
			a.mu.Lock()
			version = a.capsVersion
			a.mu.Unlock()
			c := cfg
			c.Register = proto.CloneOf(cfg.Register)
			c.Register.Capabilities = manifest(a.caps.List())
			return c
		}, quicSlow)
		probed <- probeResult{conn, err}
	}()
	select {
	case err := <-oldDone:
		stopServing()
		stopProbing()
		if p := <-probed; p.conn != nil {
			// Registered as the gRPC session ended: use it.
			return p.conn, version, func() {}, nil
		}
		return nil, 0, nil, err
	case p := <-probed:
		stopProbing()
		if p.err != nil {
			stopServing()
			<-oldDone
			if carrier.IsVerdict(p.err) {
				return nil, 0, nil, p.err
			}
			return nil, 0, nil, ctx.Err()
		}
		return p.conn, version, func() {
			stopServing()
			if oerr := <-oldDone; oerr != nil && !errors.Is(oerr, carrier.ErrReplaced) && ctx.Err() == nil {
				a.cfg.Logger.Info("the gRPC session ended after the move to QUIC", "err", oerr)
			}
		}, nil
	}
}

type probeResult struct {
	conn carrier.Conn
	err  error
}

// movedToQUIC serves conn, a QUIC session that replaced the gRPC one.
func (a *Agent) movedToQUIC(ctx context.Context, conn carrier.Conn, capsVersion int) error {
	a.cfg.Logger.Info("QUIC (UDP) answers again; moved the session from gRPC (TCP) to QUIC")
	a.update(func(s *Status) {
		s.Transport, s.FallbackReason, s.FallbackError = wire.TransportQUIC, "", ""
	})
	return a.serve(ctx, conn, capsVersion)
}
