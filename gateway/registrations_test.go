package gateway_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testsqlite"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// Registrations that arrive together are written by group commit: n nodes
// that register while the store's writer is held up (by another
// process's write lock, as a slow disk would) are all registered, over
// QUIC, in far fewer than n transactions (palyra_store_commits_total).
// Written one by one, each would cost a commit of its own.
func TestConcurrentRegistrationsBatched(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil, func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" })
	const n = 16
	agents := make([]*node.Agent, n)
	for i := range agents {
		agents[i] = pairedAgent(t, rg, "batched-"+string(rune('a'+i)), nil, 0)
	}
	before := metricValue(t, metricsText(t, rg), "palyra_store_commits_total")
	// The store waits up to its busy timeout (5 s) for the lock; every
	// registration must queue within it.
	release := testsqlite.LockForWriting(t, filepath.Join(dir, gateway.StoreFile))
	for _, a := range agents {
		defer runAgent(a)()
	}
	deadline := time.Now().Add(4 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	for rg.g.RegistrationsWaiting() < n && time.Now().Before(deadline) {
		<-tick.C
	}
	tick.Stop()
	waiting := rg.g.RegistrationsWaiting()
	release()
	if waiting < n {
		t.Fatalf("only %d of %d registrations queued behind the held store within 4 s", waiting, n)
	}
	for _, a := range agents {
		st := waitFor(t, a, 30*time.Second, "connected", func(s node.Status) bool { return s.State == node.StateConnected })
		if st.Transport != wire.TransportQUIC {
			t.Errorf("node %s connected over %q (%s), want QUIC", st.DeviceName, st.Transport, st.FallbackReason)
		}
	}
	commits := metricValue(t, metricsText(t, rg), "palyra_store_commits_total") - before
	resp, err := rg.admin.ListNodes(t.Context(), &adminv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, nd := range resp.Nodes {
		registered[nd.DeviceId] = true
	}
	for _, a := range agents {
		if id := a.Status().DeviceID; !registered[id] {
			t.Errorf("node %s (%s) is connected but not registered in the store", a.Status().DeviceName, id)
		}
	}
	t.Logf("%d registrations queued together: %v commits in all meanwhile (registrations, audit rows)", n, commits)
	// Two for the registrations (the one that found the writer free, then
	// the rest), a few for the audit log's batches.
	if commits >= n/2 {
		t.Errorf("%d concurrent registrations took %v commits; they should be written together", n, commits)
	}
}
