package gateway_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testsqlite"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// storedLastSeen reads the last-seen times in the store of the gateway
// whose data is in dir, with a store of its own (SQLite lets it beside a
// running gateway): what a crash would leave.
func storedLastSeen(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	s, err := store.Open(t.Context(), filepath.Join(dir, gateway.StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nodes, err := s.ListNodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, n := range nodes {
		out[n.DeviceID.String()] = n.LastSeen
	}
	return out
}

// adminLastSeen is the node's last-seen time as the admin API shows it.
func adminLastSeen(t *testing.T, rg *runningGateway, id string) time.Time {
	t.Helper()
	resp, err := rg.admin.ListNodes(t.Context(), &adminv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range resp.Nodes {
		if n.DeviceId == id {
			return time.UnixMilli(n.LastSeenUnixMs)
		}
	}
	t.Fatalf("node %s not listed", id)
	return time.Time{}
}

// waitUntil checks ok every 20 ms until it holds, or fails after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		<-tick.C
	}
}

// connectedNodes pairs and runs n nodes with rg and waits until all are
// connected; it returns their device IDs.
func connectedNodes(t *testing.T, rg *runningGateway, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		a := pairedAgent(t, rg, "node"+string(rune('a'+i)), nil, 0)
		stop := runAgent(a)
		t.Cleanup(func() { _ = stop() })
		ids[i] = waitState(t, a, node.StateConnected).DeviceID
	}
	return ids
}

// Renewals reach the store within one presence interval (all nodes in one
// transaction), without a write per renewal.
func TestPresenceWrittenEveryInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const interval = 300 * time.Millisecond
	rg := startGateway(t, dir, "127.0.0.1:0", nil, func(c *gateway.Config) { c.PresenceInterval = interval })
	ids := connectedNodes(t, rg, 2)
	after := time.Now()
	// A node renews every second (a lease of 3 s): its renewal after
	// `after` is in the store one interval later.
	waitUntil(t, time.Second+3*interval+2*time.Second, "both nodes' renewals in the store", func() bool {
		seen := storedLastSeen(t, dir)
		return seen[ids[0]].After(after) && seen[ids[1]].After(after)
	})
}

// A clean stop leaves the store with every node's final last-seen time,
// even when the interval never came round.
func TestPresenceFinalOnCleanStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil, func(c *gateway.Config) { c.PresenceInterval = time.Hour })
	ids := connectedNodes(t, rg, 3)
	registered := storedLastSeen(t, dir)
	after := time.Now()
	// The admin API shows renewals at once, though the store has only the
	// registrations.
	for _, id := range ids {
		waitUntil(t, 5*time.Second, "a renewal shown by the admin API", func() bool {
			return adminLastSeen(t, rg, id).After(after)
		})
	}
	seen := storedLastSeen(t, dir)
	for _, id := range ids {
		if !seen[id].Equal(registered[id]) {
			t.Errorf("node %s: the store has %v, the registration's %v: written before the interval", id, seen[id], registered[id])
		}
	}
	stopping := time.Now()
	rg.stop()
	seen = storedLastSeen(t, dir)
	for _, id := range ids {
		// Each session ended, and was noted, as the gateway stopped.
		if !seen[id].After(stopping) {
			t.Errorf("node %s: last seen %v in the store after a clean stop begun at %v", id, seen[id], stopping)
		}
	}
}

// Lease renewals are granted while the store cannot be written (another
// process holds its write lock for longer than two leases): a grant never
// waits for the disk, so the node stays connected all along.
func TestRenewalWhileStoreLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil)
	a := pairedAgent(t, rg, "locked", nil, 0)
	defer runAgent(a)()
	st := waitState(t, a, node.StateConnected)
	id, err := identity.ParseDeviceID(st.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	release := testsqlite.LockForWriting(t, filepath.Join(dir, gateway.StoreFile))
	locked := time.Now()
	// The lease is 3 s, renewed every second; the store's busy timeout is
	// 5 s. Two leases and more of renewals, each seen by the gateway.
	waitUntil(t, 15*time.Second, "renewals seen while the store is locked", func() bool {
		return adminLastSeen(t, rg, id.String()).After(locked.Add(7 * time.Second))
	})
	now := a.Status()
	release()
	if now.State != node.StateConnected || !now.ConnectedSince.Equal(st.ConnectedSince) {
		t.Fatalf("while the store was locked the node went from %+v to %+v", st, now)
	}
}
