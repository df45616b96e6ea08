package gateway_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/testaddr"
	"github.com/palyra/palyra-go/internal/testflood"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/internal/testpg"
	"github.com/palyra/palyra-go/node"
	nodecarrier "github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/pairclient"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

func TestMain(m *testing.M) {
	testflood.Main() // in a flood's child process, runs the flood and exits
	peerChildMain()  // in a peer gateway's child process, runs it until killed
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	os.Exit(testpg.Main(m))
}

// runningGateway is a gateway served in the background of a test.
type runningGateway struct {
	g      *gateway.Gateway
	admin  adminv1.AdminClient
	cancel context.CancelFunc
	done   chan error
}

// startGateway starts a gateway; now is its clock (nil: the real one);
// options change its Config.
func startGateway(t testing.TB, dataDir, listen string, now func() time.Time, options ...func(*gateway.Config)) *runningGateway {
	t.Helper()
	socket := filepath.Join(dataDir, "admin.sock")
	cfg := gateway.Config{
		DataDir:     dataDir,
		Name:        "Test Gateway",
		Listen:      listen,
		AdminSocket: socket,
		LeaseTTL:    3 * time.Second,
		Logger:      testlog.New(t, "who", "gateway"),
		Now:         now,
	}
	for _, o := range options {
		o(&cfg)
	}
	g, err := gateway.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rg := &runningGateway{g: g, cancel: cancel, done: make(chan error, 1)}
	go func() { rg.done <- g.Run(ctx) }()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rg.admin = adminv1.NewAdminClient(conn)
	t.Cleanup(rg.stop)
	return rg
}

func (rg *runningGateway) stop() {
	if rg.cancel == nil {
		return
	}
	rg.cancel()
	rg.cancel = nil
	<-rg.done
}

func newAgent(t *testing.T, name string) *node.Agent {
	t.Helper()
	return agentIn(t, t.TempDir(), name)
}

// agentIn opens the agent whose configuration and secrets are in dir, as
// a node process starting there does.
func agentIn(t testing.TB, dir, name string) *node.Agent {
	t.Helper()
	a, err := node.New(agentConfig(t, dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// agentConfig is the Config of agentIn's agent.
func agentConfig(t testing.TB, dir, name string) node.Config {
	t.Helper()
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	return node.Config{ConfigDir: dir, Secrets: secrets, Name: name, Logger: testlog.New(t, "who", name)}
}

// waitState waits until the agent reaches a state, checking whenever its
// status changes, or fails at the deadline.
func waitState(t *testing.T, a *node.Agent, want node.State) node.Status {
	t.Helper()
	return waitStatus(t, a, "reached "+string(want), func(s node.Status) bool { return s.State == want })
}

// waitFor waits until the agent's status satisfies ok, checking whenever
// it changes, or fails after limit.
func waitFor(t testing.TB, a *node.Agent, limit time.Duration, what string, ok func(node.Status) bool) node.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	var last node.Status
	for st := range a.Watch(ctx) {
		if last = st; ok(st) {
			return st
		}
	}
	t.Fatalf("node %s never %s within %v; last status %+v", last.DeviceName, what, limit, last)
	return last
}

// waitStatus waits until the agent's status satisfies ok, checking
// whenever it changes, or fails at the deadline.
func waitStatus(t *testing.T, a *node.Agent, what string, ok func(node.Status) bool) node.Status {
	t.Helper()
	return waitFor(t, a, 20*time.Second, what, ok)
}

// waitOnline polls the admin API (the only view a real admin has) until the
// node's presence is as wanted, bounded by a deadline.
func waitOnline(t testing.TB, rg *runningGateway, deviceID string, want bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		resp, err := rg.admin.ListNodes(t.Context(), &adminv1.ListNodesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range resp.Nodes {
			if n.DeviceId == deviceID && n.Online == want {
				return
			}
		}
		<-tick.C
	}
	t.Fatalf("node %s never became online=%v", deviceID, want)
}

// runAgent runs the agent's session loop until the returned stop is called.
func runAgent(a *node.Agent) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func TestPairConnectRestartRevoke(t *testing.T) {
	dataDir := t.TempDir()
	addr := testaddr.Restartable(t)
	rg := startGateway(t, dataDir, addr, nil)

	// Pair by PIN, with approval.
	code, err := rg.admin.MintNodePairingCode(t.Context(), &adminv1.MintNodePairingCodeRequest{Name: "laptop code"})
	if err != nil {
		t.Fatal(err)
	}
	laptop := newAgent(t, "laptop")
	pending := make(chan pairclient.Pending, 1)
	paired := make(chan error, 1)
	go func() {
		_, err := laptop.Pair(t.Context(), node.PairOptions{Gateway: addr, PIN: code.Pin, OnPending: func(p pairclient.Pending) { pending <- p }})
		paired <- err
	}()
	var p pairclient.Pending
	select {
	case p = <-pending:
	case err := <-paired:
		t.Fatalf("pairing ended before approval: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no pending request")
	}
	reqs, err := rg.admin.ListPairingRequests(t.Context(), &adminv1.ListPairingRequestsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs.Requests) != 1 || reqs.Requests[0].VerificationCode != p.VerificationCode || reqs.Requests[0].Name != "laptop" {
		t.Fatalf("pending requests %v, device shows %q", reqs.Requests, p.VerificationCode)
	}
	if _, err := rg.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: p.RequestID}); err != nil {
		t.Fatal(err)
	}
	if err := <-paired; err != nil {
		t.Fatalf("pairing by PIN: %v", err)
	}
	laptopID := laptop.Status().DeviceID

	// Pair a second node by link, auto-approved.
	code2, err := rg.admin.MintNodePairingCode(t.Context(), &adminv1.MintNodePairingCodeRequest{AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	server := newAgent(t, "server")
	if _, err := server.Pair(t.Context(), node.PairOptions{Link: code2.Link}); err != nil {
		t.Fatalf("pairing by link: %v", err)
	}
	// The link's code is used now: it fails like a wrong one.
	again := newAgent(t, "again")
	if _, err := again.Pair(t.Context(), node.PairOptions{Link: code2.Link}); !errors.Is(err, pairing.ErrConfirmationFailed) {
		t.Fatalf("reusing a code: %v", err)
	}

	// Both connect and show online.
	stopLaptop := runAgent(laptop)
	stopServer := runAgent(server)
	defer stopServer()
	waitState(t, laptop, node.StateConnected)
	waitState(t, server, node.StateConnected)
	waitOnline(t, rg, laptopID, true)

	// Killing the node makes it offline at once.
	if err := stopLaptop(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, rg, laptopID, false)

	// Restarting the gateway: the running node reconnects by itself.
	rg.stop()
	waitState(t, server, node.StateOffline)
	rg = startGateway(t, dataDir, addr, nil)
	waitState(t, server, node.StateConnected)
	waitOnline(t, rg, server.Status().DeviceID, true)

	// Revoking closes the live session and refuses the next handshake.
	stopLaptop = runAgent(laptop)
	waitState(t, laptop, node.StateConnected)
	if _, err := rg.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: laptopID}); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, laptop, node.StateRevoked)
	if st.RevokedAt.IsZero() {
		t.Errorf("the first revoked status has no date: %+v", st)
	}
	if err := stopLaptop(); !errors.Is(err, nodecarrier.ErrRevoked) {
		t.Fatalf("Run after revocation returned %v (status %+v)", err, st)
	}
	waitOnline(t, rg, laptopID, false)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := laptop.Run(ctx); !errors.Is(err, nodecarrier.ErrRevoked) {
		t.Fatalf("reconnecting a revoked device: %v", err)
	}
}
