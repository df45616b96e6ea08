package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/store"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// heldPoll is how often a wait for a gateway's node listing reads it.
const heldPoll = 20 * time.Millisecond

// cluster starts gateways A and B on the run's database, each in a
// directory of its own under name, with IDs of their own.
func (b *run) cluster(ctx context.Context, name string) (ga, gb *Gateway, err error) {
	start := func(which string) (*Gateway, error) {
		dir, err := b.subdir(name + "-" + which)
		if err != nil {
			return nil, err
		}
		o := b.gatewayOptions()
		o.Configure = func(c *gateway.Config) { c.Database = b.opts.Database }
		gw, err := StartGateway(ctx, filepath.Join(dir, "gateway"), o)
		if err != nil {
			return nil, fmt.Errorf("gateway %s: %w", which, err)
		}
		return gw, nil
	}
	if ga, err = start("a"); err != nil {
		return nil, nil, err
	}
	if gb, err = start("b"); err != nil {
		ga.Stop()
		return nil, nil, err
	}
	return ga, gb, nil
}

// waitHeld waits until gw lists every node of ids online through one of
// the gateways, and returns their holders' IDs: their routes are written
// (in the background, after their sessions attached), so calls through
// the other gateway are forwarded. Nodes pick one of their gateways'
// addresses at random, so either may hold any of them.
func waitHeld(ctx context.Context, gw *Gateway, ids []string) (map[string]string, error) {
	ctx, cancel := deadlineFor(ctx, connectWait)
	defer cancel()
	tick := time.NewTicker(heldPoll)
	defer tick.Stop()
	for {
		resp, err := gw.Admin.ListNodes(ctx, &adminv1.ListNodesRequest{})
		if err != nil {
			return nil, fmt.Errorf("waiting until gateway %s sees which gateway holds each node: %w", gw.G.GatewayID(), err)
		}
		held := make(map[string]string, len(ids))
		for _, n := range resp.Nodes {
			if n.Online && n.Gateway != "" && slices.Contains(ids, n.DeviceId) {
				held[n.DeviceId] = n.Gateway
			}
		}
		if len(held) == len(ids) {
			return held, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting until gateway %s sees which gateway holds each node: %d of %d are held: %w",
				gw.G.GatewayID(), len(held), len(ids), context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// ids are the device IDs of the fleet's nodes.
func (f *Fleet) ids() []string {
	ids := make([]string, len(f.Agents))
	for i, a := range f.Agents {
		ids[i] = a.Status().DeviceID
	}
	return ids
}

// forward times sequential calls made through one gateway, A, for a node
// held by the other, B (A reads the route, forwards the call over its
// QUIC connection to B, B runs it as a direct call), beside the same
// calls made on B directly, in the same run, on one PostgreSQL database.
func (b *run) forward(ctx context.Context) error {
	ga, gb, err := b.cluster(ctx, "forward")
	if err != nil {
		return err
	}
	defer ga.Stop()
	defer gb.Stop()
	fleet, err := b.startNodes(ctx, "forward", 1, gb, Connected)
	if err != nil {
		return err
	}
	defer fleet.Stop()
	id := fleet.Agents[0].Status().DeviceID
	held, err := waitHeld(ctx, ga, fleet.ids())
	if err != nil {
		return err
	}
	if held[id] == ga.G.GatewayID() {
		// The node chose A among the addresses it learned. B, which
		// forwards, sees that once A's route writer has written the
		// route; until then it would answer that the node is offline.
		ga, gb = gb, ga
		if _, err := waitHeld(ctx, ga, fleet.ids()); err != nil {
			return err
		}
	}
	return b.sequential(ctx, PhaseForward, "forward_invoke", "invoke %s forwarded A → B → node (baseline: the same call on B)",
		func() error { return ga.Invoke(ctx, id) },
		func() error { return gb.Invoke(ctx, id) })
}

// revocation times revocations of nodes made through the gateway that
// does not hold them, one at a time, from the call (its transaction and
// NOTIFY included) until the gateway that holds the node has closed its
// session (that gateway's offline event): Revocations fresh nodes per
// repetition, whose least, median and greatest time it records. The
// baseline is PostgreSQL's own part: a NOTIFY committed on one connection
// until another that listens has it.
func (b *run) revocation(ctx context.Context) error {
	ga, gb, err := b.cluster(ctx, "revocation")
	if err != nil {
		return err
	}
	defer ga.Stop()
	defer gb.Stop()
	notify, err := openNotifyPair(ctx, b.opts.Database)
	if err != nil {
		return err
	}
	defer notify.close()
	n := b.opts.Revocations
	label := func(stat string) string {
		return fmt.Sprintf("revocation through one gateway until the other closed the session, %s of %d (raw: NOTIFY to a listener)", stat, n)
	}
	for rep := range b.opts.Reps {
		fleet, err := b.startNodes(ctx, fmt.Sprintf("revocation-%d", rep), n, gb, Connected)
		if err != nil {
			return err
		}
		took, err := revokeEach(ctx, ga, gb, fleet)
		fleet.Stop()
		if err != nil {
			return err
		}
		raw, err := timeCalls(ctx, n, func() error { return notify.roundTrip(ctx) })
		if err != nil {
			return err
		}
		b.r.pair("revocation_min_ms", label("least"), millis(slices.Min(took)), millis(slices.Min(raw)))
		b.r.pair("revocation_median_ms", label("median"), millis(percentile(took, 0.5)), millis(percentile(raw, 0.5)))
		b.r.pair("revocation_max_ms", label("greatest"), millis(slices.Max(took)), millis(slices.Max(raw)))
		b.progress("revocation %d/%d", rep+1, b.opts.Reps)
	}
	return nil
}

// revokeEach revokes the fleet's nodes one after the other, each through
// whichever of ga and gb does not hold it, and returns how long each took
// until the other had closed its session.
func revokeEach(ctx context.Context, ga, gb *Gateway, fleet *Fleet) ([]time.Duration, error) {
	ids := fleet.ids()
	held, err := waitHeld(ctx, ga, ids)
	if err != nil {
		return nil, err
	}
	took := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		through, holder := ga, gb
		if held[id] == ga.G.GatewayID() {
			through, holder = gb, ga
		}
		d, err := revokeOne(ctx, through, holder, id)
		if err != nil {
			return nil, err
		}
		took = append(took, d)
	}
	return took, nil
}

// revokeOne revokes node id through one gateway and times it until the
// node's session on holder has closed.
func revokeOne(ctx context.Context, through, holder *Gateway, id string) (time.Duration, error) {
	ctx, cancel := deadlineFor(ctx, connectWait)
	defer cancel()
	evs, err := holder.G.WatchEvents(ctx, id)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := through.G.RevokeDevice(ctx, id); err != nil {
		return 0, fmt.Errorf("revoking node %s through gateway %s: %w", id, through.G.GatewayID(), err)
	}
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				return 0, fmt.Errorf("gateway %s stopped telling node %s's events", holder.G.GatewayID(), id)
			}
			if e.Kind == events.KindOffline {
				return time.Since(start), nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for gateway %s to close the session of node %s, revoked through %s: %w",
				holder.G.GatewayID(), id, through.G.GatewayID(), context.Cause(ctx))
		}
	}
}

// notifyPair is two connections to the database, one listening on a
// channel of its own, the other notifying it.
type notifyPair struct {
	listener, notifier *pgx.Conn
	channel            string
}

func openNotifyPair(ctx context.Context, url string) (*notifyPair, error) {
	dial, err := store.Dialer(url, "bench")
	if err != nil {
		return nil, err
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, err
	}
	p := &notifyPair{channel: "palyra_bench_" + hex.EncodeToString(suffix[:])}
	if p.listener, err = dial(ctx); err != nil {
		return nil, fmt.Errorf("connecting to the database for the NOTIFY baseline: %w", err)
	}
	if p.notifier, err = dial(ctx); err != nil {
		p.close()
		return nil, fmt.Errorf("connecting to the database for the NOTIFY baseline: %w", err)
	}
	if _, err := p.listener.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		p.close()
		return nil, fmt.Errorf("listening for the NOTIFY baseline: %w", err)
	}
	return p, nil
}

// roundTrip commits one notification and waits until the listener has it.
func (p *notifyPair) roundTrip(ctx context.Context) error {
	ctx, cancel := deadlineFor(ctx, connectWait)
	defer cancel()
	if _, err := p.notifier.Exec(ctx, "SELECT pg_notify($1, '')", p.channel); err != nil {
		return fmt.Errorf("NOTIFY baseline: %w", err)
	}
	if _, err := p.listener.WaitForNotification(ctx); err != nil {
		return fmt.Errorf("NOTIFY baseline: waiting for the notification: %w", err)
	}
	return nil
}

func (p *notifyPair) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, c := range []*pgx.Conn{p.listener, p.notifier} {
		if c != nil {
			_ = c.Close(ctx)
		}
	}
}
