package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func joinTest(t *testing.T, s *Store, id string, until time.Time) {
	t.Helper()
	err := s.JoinGateway(context.Background(), GatewayLease{ID: id, NodeAddresses: []string{"127.0.0.1:7443", "[::1]:7443"},
		PeerAddress: "127.0.0.1:7443", StartedAt: t0, LeaseExpires: until})
	if err != nil {
		t.Fatal(err)
	}
}

func wantRoute(t *testing.T, s *Store, d Device, at time.Time, gateway string, epoch uint64) {
	t.Helper()
	r, err := s.LookupRoute(context.Background(), d.ID, at)
	if gateway == "" {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("route of %s at %v: %+v, %v; want none", d.ID, at, r, err)
		}
		return
	}
	if err != nil || r.GatewayID != gateway || r.Epoch != epoch || r.PeerAddress != "127.0.0.1:7443" {
		t.Fatalf("route of %s at %v: %+v, %v; want %s epoch %d", d.ID, at, r, err, gateway, epoch)
	}
	all, err := s.ListRoutes(context.Background(), at)
	if err != nil || all[d.ID].GatewayID != gateway || all[d.ID].Epoch != epoch {
		t.Fatalf("ListRoutes at %v: %+v, %v; want %s epoch %d for %s", at, all, err, gateway, epoch, d.ID)
	}
}

func TestGatewayLeases(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		s, _ := b.openTest(t)
		ctx := context.Background()
		joinTest(t, s, "gw-a", t0.Add(10*time.Second))
		joinTest(t, s, "gw-b", t0.Add(5*time.Second))
		if err := s.RenewGateway(ctx, "gw-a", t0.Add(20*time.Second)); err != nil {
			t.Fatal(err)
		}
		// A late renewal never shortens a lease.
		if err := s.RenewGateway(ctx, "gw-a", t0.Add(15*time.Second)); err != nil {
			t.Fatal(err)
		}
		gws, err := s.ListGateways(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(gws) != 2 || gws[0].ID != "gw-a" || !gws[0].LeaseExpires.Equal(t0.Add(20*time.Second)) ||
			!slices.Equal(gws[0].NodeAddresses, []string{"127.0.0.1:7443", "[::1]:7443"}) || !gws[0].StartedAt.Equal(t0) {
			t.Fatalf("gateways %+v", gws)
		}
		if !gws[1].Live(t0.Add(4*time.Second)) || gws[1].Live(t0.Add(5*time.Second)) {
			t.Fatalf("gw-b's lease to %v: live at 4 s and not at 5 s expected", gws[1].LeaseExpires)
		}
		if n, err := s.PruneGateways(ctx, t0.Add(6*time.Second)); err != nil || n != 1 {
			t.Fatalf("PruneGateways: %d, %v; want gw-b pruned", n, err)
		}
		if err := s.RenewGateway(ctx, "gw-b", t0.Add(time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("renewing a pruned gateway: %v, want ErrNotFound", err)
		}
		if err := s.LeaveGateway(ctx, "gw-a"); err != nil {
			t.Fatal(err)
		}
		if gws, err := s.ListGateways(ctx); err != nil || len(gws) != 0 {
			t.Fatalf("gateways after leaving: %+v, %v", gws, err)
		}
	})
}

// A node reconnects through another gateway before the first one noticed
// it left: the first one's late detach removes its own route only, and
// the node is shown held by the second, once.
func TestRoutesReconnectRace(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		s, _ := b.openTest(t)
		ctx := context.Background()
		lease := t0.Add(time.Minute)
		joinTest(t, s, "gw-a", lease)
		joinTest(t, s, "gw-b", lease)
		d, _ := pairedDevice(t, s)
		onB := Route{DeviceID: d.ID, GatewayID: "gw-b", Epoch: 5}
		onA := Route{DeviceID: d.ID, GatewayID: "gw-a", Epoch: 3}
		wantRoute(t, s, d, t0, "", 0)
		if err := s.AddRoute(ctx, onB, t0); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "gw-b", 5)
		if err := s.AddRoute(ctx, onA, t0); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "gw-a", 3)
		if err := s.RemoveRoute(ctx, onB); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "gw-a", 3)
		// The same the other way round: A's write of its attach came late,
		// after B's; A's session then ended, and B's counts again.
		if err := s.AddRoute(ctx, onB, t0); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "gw-b", 5)
		if err := s.RemoveRoute(ctx, onA); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "gw-b", 5)
		// Writing an attach twice is harmless.
		if err := s.AddRoute(ctx, onB, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveRoute(ctx, onB); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "", 0)
	})
}

// A route counts only while its gateway's lease does; a gateway that
// joins again under the same ID starts with none; removing a device
// removes its routes.
func TestRoutesFollowLeases(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		s, _ := b.openTest(t)
		ctx := context.Background()
		joinTest(t, s, "gw-a", t0.Add(time.Minute))
		joinTest(t, s, "gw-b", t0.Add(10*time.Second))
		d, _ := pairedDevice(t, s)
		other, _ := pairedDevice(t, s)
		if err := s.AddRoute(ctx, Route{DeviceID: d.ID, GatewayID: "gw-a", Epoch: 1}, t0); err != nil {
			t.Fatal(err)
		}
		// Newer, but through the gateway whose lease ends first.
		if err := s.AddRoute(ctx, Route{DeviceID: d.ID, GatewayID: "gw-b", Epoch: 1}, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.AddRoute(ctx, Route{DeviceID: other.ID, GatewayID: "gw-b", Epoch: 2}, t0); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "gw-b", 1)
		wantRoute(t, s, other, t0, "gw-b", 2)
		late := t0.Add(10 * time.Second)
		wantRoute(t, s, d, late, "gw-a", 1)
		wantRoute(t, s, other, late, "", 0)
		if all, err := s.ListRoutes(ctx, late); err != nil || len(all) != 1 {
			t.Fatalf("routes once gw-b's lease ran out: %+v, %v", all, err)
		}
		joinTest(t, s, "gw-b", t0.Add(time.Minute))
		wantRoute(t, s, other, late, "", 0)
		wantRoute(t, s, d, late, "gw-a", 1)
		if err := s.RemoveDevice(ctx, d.ID, t0); err != nil {
			t.Fatal(err)
		}
		wantRoute(t, s, d, t0, "", 0)
	})
}
