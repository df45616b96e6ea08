package grpccarrier_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/palyra/palyra-go/internal/testpki"
	nodegrpc "github.com/palyra/palyra-go/node/grpccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// BenchmarkInvokeRoundTripGRPC measures one call pushed to a node over
// gRPC: Invoke on the session's stream, the node's handler, Result through
// SubmitCapabilityResult. BenchmarkRawGRPCUnary is its floor.
func BenchmarkInvokeRoundTripGRPC(b *testing.B) {
	f := newFixture(b, time.Minute)
	d := testpki.NewDevice(b, f.ca)
	cfg := f.sessionConfig(d)
	cfg.Invoke = func(_ context.Context, inv *nodev1.Invoke, _ func(string)) *nodev1.Result {
		return &nodev1.Result{Ok: true, OutputJson: inv.GetArgsJson()}
	}
	c, err := nodegrpc.Dial(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = c.Serve(ctx)
	}()
	defer func() {
		cancel()
		<-served
	}()
	inv := &nodev1.Invoke{RequestId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Capability: "bench.echo", ArgsJson: []byte(`{"n":1}`)}
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.srv.Invoke(b.Context(), d.ID(), inv, nil)
		if err != nil || !res.GetOk() {
			b.Fatal(err, res)
		}
	}
}

// BenchmarkRawGRPCUnary is the floor for BenchmarkInvokeRoundTripGRPC: a
// unary health check on the same grpc.Server, TLS config and client
// certificate.
func BenchmarkRawGRPCUnary(b *testing.B) {
	f := newFixture(b, time.Minute)
	d := testpki.NewDevice(b, f.ca)
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
