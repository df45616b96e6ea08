package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// pairingConn dials the gateway's pairing port as a client without a
// device certificate (grpcurl, a load balancer's probe) does.
func pairingConn(t *testing.T, rg *runningGateway) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(rg.g.CA())
	conn, err := grpc.NewClient("passthrough:///"+rg.g.Addresses()[0], grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: pool,
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func adminConn(t *testing.T, rg *runningGateway) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+rg.g.AdminAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// listServices asks the server's reflection service for its services.
func listServices(t *testing.T, conn *grpc.ClientConn) []string {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	return names
}

// TestHealthAndReflection: the pairing port and the admin socket answer
// the standard health check, for the server and for each of their
// services, and list their services by reflection, as grpcurl asks.
func TestHealthAndReflection(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	for _, tt := range []struct {
		name     string
		conn     *grpc.ClientConn
		services []string
	}{
		{"pairing port", pairingConn(t, rg), []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
			"grpc.reflection.v1alpha.ServerReflection", "palyra.node.v1.Node", "palyra.pairing.v1.Pairing"}},
		{"admin socket", adminConn(t, rg), []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
			"grpc.reflection.v1alpha.ServerReflection", "palyra.admin.v1.Admin"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := listServices(t, tt.conn); !slices.Equal(got, tt.services) {
				t.Errorf("reflection lists %v, want %v", got, tt.services)
			}
			health := healthpb.NewHealthClient(tt.conn)
			// The server as a whole (""), and each of Palyra's services.
			for _, service := range append([]string{""}, slices.DeleteFunc(slices.Clone(tt.services), func(s string) bool { return !strings.HasPrefix(s, "palyra.") })...) {
				resp, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
				if err != nil {
					t.Fatalf("health check of %q: %v", service, err)
				}
				if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("health of %q is %v, want SERVING", service, resp.GetStatus())
				}
			}
		})
	}
}

// TestHealthNotServingOnShutdown: a probe watching the health of either
// port hears NOT_SERVING when the gateway begins to stop, before its
// connections are closed.
func TestHealthNotServingOnShutdown(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	watchCtx, endWatches := context.WithCancel(t.Context())
	defer endWatches()
	var watches []healthpb.Health_WatchClient
	for _, conn := range []*grpc.ClientConn{pairingConn(t, rg), adminConn(t, rg)} {
		w, err := healthpb.NewHealthClient(conn).Watch(watchCtx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health is %v while running, want SERVING", resp.GetStatus())
		}
		watches = append(watches, w)
	}
	cancel := rg.cancel
	rg.cancel = nil
	cancel()
	for i, w := range watches {
		resp, err := w.Recv()
		if err != nil {
			t.Fatalf("watch %d ended without NOT_SERVING: %v", i, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health is %v while stopping, want NOT_SERVING", resp.GetStatus())
		}
	}
	// The probes hang up, as they do on NOT_SERVING, so that the
	// gateway need not wait out its drain timeout.
	endWatches()
	if err := <-rg.done; err != nil {
		t.Fatal(err)
	}
}
