package gateway

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// addHealthAndReflection registers the standard gRPC health and reflection
// services on s, so load balancers, probes and grpcurl can use the port
// without Palyra's .proto files. Call it after s has its other services:
// each of them, and the server as a whole (""), reports SERVING until the
// returned server's Shutdown, which a stopping gateway calls before it
// drains its connections so that probes see NOT_SERVING first.
func addHealthAndReflection(s *grpc.Server) *health.Server {
	hs := health.NewServer()
	for name := range s.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthgrpc.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return hs
}
