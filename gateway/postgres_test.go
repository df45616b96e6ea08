package gateway_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/internal/testaddr"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/internal/testpg"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// A gateway whose store is in PostgreSQL: a node pairs through the real
// flow (PIN, approval), connects and runs a capability; the gateway
// restarts on the same database, from another data directory (nothing of
// its state is in the directory), and the node comes back, its device
// still known and its CA still the one that signed its certificate.
func TestGatewayOnPostgres(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	onDB := func(c *gateway.Config) { c.Database = db.URL }
	firstDir := t.TempDir()
	addr := testaddr.Restartable(t)
	rg := startGateway(t, firstDir, addr, nil, onDB)
	if _, err := os.Stat(filepath.Join(firstDir, gateway.StoreFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a gateway on PostgreSQL made a SQLite file too: %v", err)
	}

	laptop, p, paired := pairPending(t, rg, "laptop")
	if _, err := rg.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: p.RequestID}); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Recv(t, paired, 20*time.Second, "the end of the pairing"); err != nil {
		t.Fatalf("pairing by PIN: %v", err)
	}
	id := laptop.Status().DeviceID

	stop := runAgent(laptop)
	defer func() { stop() }()
	waitState(t, laptop, node.StateConnected)
	waitCapability(t, rg, id, "system.info", true)
	if resp := invokeAdmin(t, rg, id, "system.info", "", 0); !resp.Ok {
		t.Fatalf("system.info failed: %s: %s", resp.ErrorCode, resp.ErrorMessage)
	}

	rg.stop()
	waitState(t, laptop, node.StateOffline)
	rg = startGateway(t, t.TempDir(), addr, nil, onDB)
	waitState(t, laptop, node.StateConnected)
	waitOnline(t, rg, id, true)
	devices, err := rg.admin.ListDevices(t.Context(), &adminv1.ListDevicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(devices.Devices) != 1 || devices.Devices[0].DeviceId != id || devices.Devices[0].Name != "laptop" {
		t.Fatalf("devices after the restart: %v", devices.Devices)
	}
	if resp := invokeAdmin(t, rg, id, "system.info", "", 0); !resp.Ok {
		t.Fatalf("system.info after the restart failed: %s: %s", resp.ErrorCode, resp.ErrorMessage)
	}
}

// Gateways that start at once on a new database end up with one CA, the
// one saved first: a device paired through one is known to all.
func TestGatewaysOnPostgresShareOneCA(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	// Migrated first, and the gateways told not to migrate, so that they
	// do not wait for each other's migration but look for the CA at once.
	s, err := store.OpenPostgres(t.Context(), db.URL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	const n = 6
	gws := make([]*gateway.Gateway, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		dir := t.TempDir()
		wg.Go(func() {
			<-start
			gws[i], errs[i] = gateway.New(t.Context(), gateway.Config{DataDir: dir, Listen: "127.0.0.1:0",
				AdminSocket: filepath.Join(dir, "admin.sock"), Database: db.URL, SkipMigrations: true, Logger: testlog.New(t, "who", "gateway")})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("gateway %d: %v", i, err)
		}
		// Run on a context already done: it serves nothing and closes
		// everything New opened.
		ended, end := context.WithCancel(context.Background())
		end()
		defer gws[i].Run(ended)
	}
	for i := 1; i < n; i++ {
		if !gws[i].CA().Equal(gws[0].CA()) {
			t.Fatalf("gateway %d has CA %s, gateway 0 %s", i, gws[i].CA().Subject, gws[0].CA().Subject)
		}
	}
}
