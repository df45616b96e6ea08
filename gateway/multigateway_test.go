package gateway_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/cluster"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/internal/testpg"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// onDatabase puts a gateway on the database of url, naming its
// connections name (application_name).
func onDatabase(url, name string) func(*gateway.Config) {
	return func(c *gateway.Config) {
		c.Database = url + "&application_name=" + name
		c.Name = name
		c.SweeperRetry = 50 * time.Millisecond
	}
}

// attachedNode pairs a node through rg by PIN, approved there, runs it
// and waits until it is connected to rg (keepPairingGateway).
func attachedNode(t *testing.T, rg *runningGateway, name string) (*node.Agent, string) {
	t.Helper()
	dir := t.TempDir()
	a, p, paired := pairPendingIn(t, rg, dir, name)
	if _, err := rg.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: p.RequestID}); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Recv(t, paired, 20*time.Second, "the end of the pairing of "+name); err != nil {
		t.Fatalf("pairing %s: %v", name, err)
	}
	a = keepPairingGateway(t, a, agentConfig(t, dir, name))
	stop := runAgent(a)
	t.Cleanup(func() { stop() })
	waitState(t, a, node.StateConnected)
	id := a.Status().DeviceID
	waitOnline(t, rg, id, true)
	return a, id
}

// watchOffline returns a channel that gets the offline event of device id
// on rg: its session there closed.
func watchOffline(t testing.TB, rg *runningGateway, id string) <-chan gateway.Event {
	t.Helper()
	events, err := rg.g.WatchEvents(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	offline := make(chan gateway.Event, 1)
	go func() {
		for e := range events {
			if e.Kind == "offline" {
				offline <- e
				return
			}
		}
	}()
	return offline
}

// Three gateways on one database: nodes attached to B and C are revoked
// through A's admin API, and B and C close their sessions at once (by
// the notification, not at some later handshake); the nodes see the
// revocation.
func TestRevocationReachesEveryGateway(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	a := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, onDatabase(db.URL, "gw-a"))
	b := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, onDatabase(db.URL, "gw-b"))
	c := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, onDatabase(db.URL, "gw-c"))

	onB, idB := attachedNode(t, b, "on-b")
	onC, idC := attachedNode(t, c, "on-c")
	offB, offC := watchOffline(t, b, idB), watchOffline(t, c, idC)
	for _, id := range []string{idB, idC} {
		if _, err := a.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if e := testwait.Recv(t, offB, 20*time.Second, "gateway B to close the session of the node revoked through A"); e.Message != "revoked" {
		t.Errorf("B closed the session for %q", e.Message)
	}
	testwait.Recv(t, offC, 20*time.Second, "gateway C to close the session of the node revoked through A")
	waitState(t, onB, node.StateRevoked)
	waitState(t, onC, node.StateRevoked)
	waitOnline(t, b, idB, false)
}

// B's listening connection is terminated and cannot come back (its role
// may not log in) while a node attached to B is revoked through A: the
// notification reaches nobody on B. Once B can connect again it reads the
// revocations it missed and closes the session; its metrics tell the
// outage.
func TestRevocationListenerResyncsAfterReconnect(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	role, roleURL := db.Role(t, "b-password")
	admin := db.Conn(t)
	// B first, as the role that owns the database: it makes the tables.
	b := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, onDatabase(roleURL, "gw-b"), func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" })
	a := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, onDatabase(db.URL, "gw-a"))
	n, id := attachedNode(t, b, "on-b")
	waitMetric(t, b, "palyra_revocation_listener_up", "listening", func(v float64) bool { return v == 1 })

	roleName := pgx.Identifier{role}.Sanitize()
	if _, err := admin.Exec(t.Context(), "ALTER ROLE "+roleName+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	db.Terminate(t, "gw-b revocations")
	waitMetric(t, b, "palyra_revocation_listener_up", "not listening", func(v float64) bool { return v == 0 })
	offline := watchOffline(t, b, id)
	if _, err := a.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: id}); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.State != node.StateConnected {
		t.Fatalf("the node is %s before B could hear of its revocation", st.State)
	}
	if _, err := admin.Exec(t.Context(), "ALTER ROLE "+roleName+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	testwait.Recv(t, offline, 30*time.Second, "gateway B to close the session once it reconnects")
	waitState(t, n, node.StateRevoked)
	waitMetric(t, b, "palyra_revocations_applied", "the revocation applied", func(v float64) bool { return v == 1 })
	text := metricsText(t, b)
	if up, losses, applied := metricValue(t, text, "palyra_revocation_listener_up"), metricValue(t, text, "palyra_revocation_listener_losses_total"),
		metricValue(t, text, "palyra_revocations_applied"); up != 1 || losses != 1 || applied != 1 {
		t.Fatalf("B's metrics after the outage: up %v, losses %v, applied %v; want 1, 1, 1", up, losses, applied)
	}
}

// waitSweeper waits (bounded) until one of rgs is the sweeper, and
// returns it.
func waitSweeper(t *testing.T, rgs ...*runningGateway) *runningGateway {
	t.Helper()
	var sweeper *runningGateway
	waitUntil(t, 20*time.Second, "a gateway becoming the sweeper", func() bool {
		for _, rg := range rgs {
			if rg.g.Sweeper() {
				sweeper = rg
				return true
			}
		}
		return false
	})
	return sweeper
}

// Of three gateways one sweeps. Its lock's connection is terminated (the
// test takes the lock meanwhile, so that nobody sweeps): it stops
// sweeping, and once it is stopped and a code is due, another gateway
// takes the lock and expires the code.
func TestSweeperFailsOver(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	clk := &clock{}
	names := []string{"gw-a", "gw-b", "gw-c"}
	var rgs []*runningGateway
	for _, name := range names {
		rgs = append(rgs, startGateway(t, t.TempDir(), "127.0.0.1:0", clk.Now, onDatabase(db.URL, name)))
	}
	leader := waitSweeper(t, rgs...)
	for _, rg := range rgs {
		if rg != leader && rg.g.Sweeper() {
			t.Fatalf("%s and another gateway both sweep", leader.g.Addresses()[0])
		}
	}
	if _, err := leader.g.MintPairingCode(t.Context(), gateway.CodeOptions{Name: "due soon", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}

	admin := db.Conn(t)
	took := make(chan error, 1)
	go func() {
		_, err := admin.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, int64(cluster.SweeperLockKey))
		took <- err
	}()
	var leaderName string
	for i, rg := range rgs {
		if rg == leader {
			leaderName = names[i]
		}
	}
	// The test's request must wait in the lock's queue before the lock is
	// released: PostgreSQL then grants it ahead of the gateways' tries.
	// Sent too late, it lost the lock to a gateway, the old sweeper's
	// reconnection among them, and waited for it for ever.
	watch := db.Conn(t)
	waitUntil(t, 20*time.Second, "the test's request for the lock to wait behind the sweeper", func() bool {
		var waiting int
		err := watch.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
		return err == nil && waiting == 1
	})
	db.Terminate(t, leaderName+" sweeper")
	if err := testwait.Recv(t, took, 20*time.Second, "the test to take the lock the sweeper lost"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the sweeper noticing that its lock's connection is gone", func() bool { return !leader.g.Sweeper() })
	leader.stop()
	clk.Advance(time.Hour)
	if _, err := admin.Exec(t.Context(), `SELECT pg_advisory_unlock($1)`, int64(cluster.SweeperLockKey)); err != nil {
		t.Fatal(err)
	}

	var rest []*runningGateway
	for _, rg := range rgs {
		if rg != leader {
			rest = append(rest, rg)
		}
	}
	next := waitSweeper(t, rest...)
	s, err := store.OpenPostgres(t.Context(), db.URL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitUntil(t, 20*time.Second, "the gateway that took over expiring the code that is due", func() bool {
		events, err := s.ListAudit(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(events, func(e store.AuditEvent) bool { return e.Kind == store.AuditCodeExpired })
	})
	if !next.g.Sweeper() {
		t.Fatal("the code expired, but the gateway that took over is not the sweeper")
	}
}

// BenchmarkRevocationPropagation times revocations made through gateway A
// until gateway B, on the same database, has closed the revoked node's
// session (B's offline event), for 50 nodes attached to B, one revocation
// at a time:
//
//	ms-min/-median/-max   from calling RevokeDevice on A (its transaction
//	                      included) to B's session closed: the commit, the
//	                      notification, B's read of the revocations after
//	                      the last it applied, Disconnect
func BenchmarkRevocationPropagation(b *testing.B) {
	const nodes = 50
	var took []time.Duration
	run := func() {
		db := testpg.New(b)
		ga := startGateway(b, b.TempDir(), "127.0.0.1:0", nil, onDatabase(db.URL, "gw-a"))
		gb := startGateway(b, b.TempDir(), "127.0.0.1:0", nil, onDatabase(db.URL, "gw-b"))
		defer ga.stop()
		defer gb.stop()
		ids := make([]string, nodes)
		for i := range ids {
			a := pairedAgent(b, gb, fmt.Sprintf("node-%02d", i), nil, 0)
			stop := runAgent(a)
			defer stop()
			ids[i] = waitFor(b, a, 30*time.Second, "connected", func(st node.Status) bool { return st.State == node.StateConnected }).DeviceID
		}
		for _, id := range ids {
			waitOnline(b, gb, id, true)
		}
		for _, id := range ids {
			offline := watchOffline(b, gb, id)
			start := time.Now()
			if _, err := ga.g.RevokeDevice(b.Context(), id); err != nil {
				b.Fatal(err)
			}
			testwait.Recv(b, offline, 20*time.Second, "B closing the session of "+id)
			took = append(took, time.Since(start))
		}
	}
	for b.Loop() {
		run()
	}
	reportSpread(b, took)
}
