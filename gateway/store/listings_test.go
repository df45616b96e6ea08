package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// takeAll holds every connection of pool until t ends, as a storm of node
// handshakes holds the readers with their device lookups.
func takeAll(t *testing.T, pool *sql.DB, n int) {
	t.Helper()
	for range n {
		c, err := pool.Conn(t.Context())
		if err != nil {
			t.Fatalf("taking a connection: %v", err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// The operator's listings read on a connection of their own (SQLite): with
// every reader taken they still answer, and with the listings' connection
// taken a device lookup still does. Each waits at most listingWait, far
// longer than an idle store takes; sharing the readers, the listing would
// wait for one until then and fail.
func TestListingsHaveTheirOwnConnection(t *testing.T) {
	const readers, listingWait = 2, 10 * time.Second
	path := filepath.Join(t.TempDir(), "gateway.db")
	s, err := Open(context.Background(), path, Options{MaxReaders: readers, Now: fixedClock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	d, _ := pairedDevice(t, s)
	if err := s.UpsertNode(context.Background(), Node{DeviceID: d.ID, Name: "laptop", LastSeen: t0}); err != nil {
		t.Fatalf("UpsertNode: %v", err)
	}

	t.Run("readers taken", func(t *testing.T) {
		takeAll(t, s.rdb.DB, readers)
		ctx, cancel := context.WithTimeout(t.Context(), listingWait)
		defer cancel()
		nodes, err := s.ListNodes(ctx)
		if err != nil || len(nodes) != 1 || nodes[0].DeviceID != d.ID {
			t.Fatalf("ListNodes with every reader taken: %v, %v; want the one node", nodes, err)
		}
		devices, err := s.ListDevices(ctx)
		if err != nil || len(devices) != 1 || devices[0].ID != d.ID {
			t.Fatalf("ListDevices with every reader taken: %v, %v; want the one device", devices, err)
		}
		if _, err := s.ListInvocations(ctx, InvocationFilter{}); err != nil {
			t.Fatalf("ListInvocations with every reader taken: %v", err)
		}
		if _, err := s.ListAudit(ctx, 10); err != nil {
			t.Fatalf("ListAudit with every reader taken: %v", err)
		}
	})
	t.Run("listings' connection taken", func(t *testing.T) {
		takeAll(t, s.ldb.DB, 1)
		ctx, cancel := context.WithTimeout(t.Context(), listingWait)
		defer cancel()
		got, err := s.GetDevice(ctx, d.ID)
		if err != nil || got.ID != d.ID {
			t.Fatalf("GetDevice with the listings' connection taken: %v, %v", got.ID, err)
		}
	})
}
