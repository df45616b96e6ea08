package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/gateway/grpccarrier"
	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/wire"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	nodegrpc "github.com/palyra/palyra-go/node/grpccarrier"
	nodequic "github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Both carriers keep their sessions in one table: a device's gRPC session
// replaces its QUIC session, which is closed as replaced, and the runtime
// does not hear the replaced session go.
func TestGRPCSessionReplacesQUICSession(t *testing.T) {
	t.Parallel()
	const wait = 10 * time.Second
	gw := testregistry.NewGateway(t, nil)
	cert := testpki.ServerCert(t, gw.CA)
	d := testpki.NewDevice(t, gw.CA)
	rt, sessions := gw.Runtime, gw.Sessions

	qs, err := quiccarrier.NewServer(quiccarrier.Config{
		TLSCertificate: func() (*tls.Certificate, error) { return cert, nil },
		Common:         gw.Common(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	quicCtx, stopQUIC := context.WithCancel(t.Context())
	defer stopQUIC()
	quicServed := make(chan error, 1)
	go func() { quicServed <- qs.Serve(quicCtx, pc) }()

	gs, err := grpccarrier.NewServer(grpccarrier.Config{Common: gw.Common(0)})
	if err != nil {
		t.Fatal(err)
	}
	grpcServer := gw.GRPCServer(t)
	gs.Register(grpcServer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = grpcServer.Serve(ln) }()
	defer func() {
		gs.Close()
		grpcServer.Stop()
	}()

	// The node's QUIC session.
	quicCfg := gw.NodeConfig(pc.LocalAddr().String(), d)
	ran := make(chan error, 1)
	go func() { ran <- nodequic.Run(t.Context(), quicCfg, nil) }()
	if r := testwait.Recv(t, rt.Ready, wait, "NodeReady over QUIC"); r.Transport != wire.TransportQUIC {
		t.Fatalf("NodeReady over %q", r.Transport)
	}
	first := sessions.Sessions()

	// The same device comes over gRPC.
	grpcCfg := gw.NodeConfig(ln.Addr().String(), d)
	grpcCfg.Invoke = func(context.Context, *nodev1.Invoke, func(string)) *nodev1.Result {
		return &nodev1.Result{Ok: true}
	}
	conn, err := nodegrpc.Dial(t.Context(), grpcCfg)
	if err != nil {
		t.Fatalf("Dial over gRPC: %v", err)
	}
	serveCtx, stopNode := context.WithCancel(t.Context())
	defer stopNode()
	served := make(chan error, 1)
	go func() { served <- conn.Serve(serveCtx) }()
	if r := testwait.Recv(t, rt.Ready, wait, "NodeReady over gRPC"); r.Transport != wire.TransportGRPC {
		t.Fatalf("NodeReady over %q", r.Transport)
	}
	if err := testwait.Recv(t, ran, wait, "the QUIC session to end"); !errors.Is(err, nodecarrier.ErrReplaced) {
		t.Errorf("QUIC Run = %v, want ErrReplaced", err)
	}

	// Once the QUIC server is done with its session, the runtime still has
	// not heard the node go: the gRPC session is current.
	stopQUIC()
	if err := testwait.Recv(t, quicServed, wait, "QUIC Serve to return"); err != nil {
		t.Errorf("QUIC Serve = %v", err)
	}
	testwait.None(t, rt.Gone, "NodeGone for the replaced session")
	s := sessions.Sessions()
	if len(first) != 1 || len(s) != 1 || s[0].Transport != wire.TransportGRPC || s[0].Epoch <= first[0].Epoch {
		t.Fatalf("Sessions() = %+v, after QUIC's %+v", s, first)
	}
	inv := &nodev1.Invoke{RequestId: "over-grpc", Capability: "test.echo"}
	if _, err := qs.Invoke(t.Context(), d.ID(), inv, nil); !errors.Is(err, carrier.ErrNodeOffline) {
		t.Errorf("QUIC Invoke = %v, want ErrNodeOffline", err)
	}
	if res, err := gs.Invoke(t.Context(), d.ID(), inv, nil); err != nil || !res.GetOk() {
		t.Errorf("gRPC Invoke = %v, %v", res, err)
	}

	stopNode()
	testwait.Recv(t, served, wait, "the gRPC session to end")
	if g := testwait.Recv(t, rt.Gone, wait, "NodeGone"); g.ID != d.ID() {
		t.Errorf("NodeGone = %+v", g)
	}
}

// TestRegistrationOfRevokedDeviceSaysRevoked: a device revoked between its
// handshake and its registration (the store refuses the node's record) is
// refused as revoked, which the carriers tell the node as a revocation,
// and not as a refused registration.
func TestRegistrationOfRevokedDeviceSaysRevoked(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	a := pairedAgent(t, rg, "revoked", nil, 0)
	id, err := identity.ParseDeviceID(a.Status().DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if err := rg.g.RegisterNode(t.Context(), id); err != nil {
		t.Fatalf("registering the paired device: %v", err)
	}
	if _, err := rg.g.RevokeDevice(t.Context(), id.String()); err != nil {
		t.Fatal(err)
	}
	if err := rg.g.RegisterNode(t.Context(), id); !errors.Is(err, identity.ErrRevoked) || errors.Is(err, carrier.ErrBusy) {
		t.Fatalf("registering the revoked device = %v, want identity.ErrRevoked", err)
	}
}
