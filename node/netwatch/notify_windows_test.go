package netwatch

import (
	"context"
	"log/slog"
	"testing"
)

// TestSystemSubscriptions subscribes to IP interface changes and to
// suspend and resume for real, as a Watch does, and cancels both. Under
// Wine that is all it can show: Wine's NotifyIpInterfaceChange accepts the
// subscription but never calls back, not even with the initial
// notification it is asked for.
func TestSystemSubscriptions(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	emit := func(Kind, string) {}
	if err := watchIPInterfaces(ctx, slog.Default(), emit); err != nil {
		t.Errorf("watchIPInterfaces: %v", err)
	}
	if err := watchPower(ctx, slog.Default(), emit); err != nil {
		t.Errorf("watchPower: %v", err)
	}
	cancel()
}
