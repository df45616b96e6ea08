package grpccarrier_test

import (
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
)

// BenchmarkInvokeRoundTripGRPC measures one call pushed to a node over
// gRPC: Invoke on the session's stream, the node's handler, Result through
// SubmitCapabilityResult. BenchmarkRawGRPCUnary is its floor.
func BenchmarkInvokeRoundTripGRPC(b *testing.B) {
	f := newFixture(b, time.Minute)
	d := testpki.NewDevice(b, f.CA)
	cfg := f.sessionConfig(d)
	cfg.Invoke = testregistry.Echo
	f.runNode(b, cfg)
	testregistry.BenchInvoke(b, f.srv.Invoke, d.ID())
}

// BenchmarkRawGRPCUnary is the floor for BenchmarkInvokeRoundTripGRPC: a
// unary health check on the same grpc.Server, TLS config and client
// certificate.
func BenchmarkRawGRPCUnary(b *testing.B) {
	f := newFixture(b, time.Minute)
	d := testpki.NewDevice(b, f.CA)
	cc, err := grpc.NewClient("passthrough:///"+f.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // a benchmark client: the server is ours
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return d.Cert, nil
		},
	})))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	if _, err := client.Check(b.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Check(b.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
