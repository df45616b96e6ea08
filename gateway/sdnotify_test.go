package gateway_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/sdnotify"
	"github.com/palyra/palyra-go/internal/testlog"
)

// TestServiceManagerNotified: a gateway run as a systemd Type=notify
// service says READY=1 once it serves (a health check made right after
// READY=1 arrives is answered SERVING) and STOPPING=1 when it begins to
// stop. The service manager is a unixgram socket, as systemd's is.
func TestServiceManagerNotified(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "notify")
	manager, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer manager.Close()
	t.Setenv("NOTIFY_SOCKET", socket)
	log := testlog.New(t)
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, func(c *gateway.Config) {
		c.Serving, c.Stopping = sdnotify.Func(sdnotify.Ready, log), sdnotify.Func(sdnotify.Stopping, log)
	})
	receive := func() string {
		t.Helper()
		if err := manager.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := manager.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if got := receive(); got != sdnotify.Ready {
		t.Fatalf("first notification %q, want %q", got, sdnotify.Ready)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := grpc_health_v1.NewHealthClient(pairingConn(t, rg)).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("health right after READY=1: %v, %v", resp.GetStatus(), err)
	}
	rg.stop()
	if got := receive(); got != sdnotify.Stopping {
		t.Fatalf("notification on stop %q, want %q", got, sdnotify.Stopping)
	}
}
