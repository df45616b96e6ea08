package localgw

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/pairing/qr"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/pairclient"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// waitFor bounds every wait in these tests.
const waitFor = 20 * time.Second

func TestMain(m *testing.M) {
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	os.Exit(m.Run())
}

// start starts a local gateway in dir, stopped when the test ends.
func start(t *testing.T, dir string) *Gateway {
	t.Helper()
	g, err := Start(context.Background(), Options{DataDir: dir, Name: "Test local gateway", Logger: testlog.New(t, "who", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Stop(); err != nil {
			t.Errorf("stopping the gateway: %v", err)
		}
	})
	return g
}

// newAgent is a node agent with the file secret store in a temporary
// directory.
func newAgent(t *testing.T, name string) *node.Agent {
	t.Helper()
	dir := t.TempDir()
	secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := node.New(node.Config{ConfigDir: dir, Secrets: secrets, Name: name, Logger: testlog.New(t, "who", name)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runAgent runs the agent's session loop until stop is called or the test
// ends; stop returns what Run returned.
func runAgent(t *testing.T, a *node.Agent) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stopOnce := func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	stopped := false
	t.Cleanup(func() {
		// A stop the test made itself was checked by the test.
		if err := stopOnce(); err != nil && !stopped {
			t.Errorf("agent run: %v", err)
		}
	})
	return func() error {
		stopped = true
		return stopOnce()
	}
}

// waitState waits until the agent reaches a state, or fails at the
// deadline.
func waitState(t *testing.T, a *node.Agent, want node.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	var last node.Status
	for st := range a.Watch(ctx) {
		last = st
		if st.State == want {
			return
		}
	}
	t.Fatalf("node %s never reached %s; last status %+v", last.DeviceName, want, last)
}

// waitOnline polls the gateway's node list until the device is online.
func waitOnline(t *testing.T, g *Gateway, deviceID string) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		nodes, err := g.Nodes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.DeviceID == deviceID && n.Online {
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("node %s never showed online; nodes %+v", deviceID, nodes)
		}
	}
}

func devices(t *testing.T, g *Gateway) []gateway.Device {
	t.Helper()
	devices, err := g.gw.Devices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return devices
}

// TestPairAgentConnects: the local gateway pairs this device by itself
// (no code typed, no approval), the device connects, and pairing it again
// changes nothing.
func TestPairAgentConnects(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "local-gateway")
	g := start(t, dir)
	host, port, err := net.SplitHostPort(g.Address())
	if err != nil || host != DefaultHost || port == "0" {
		t.Fatalf("address %q: want %s with a real port (%v)", g.Address(), DefaultHost, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, PortFile)); err != nil || strings.TrimSpace(string(b)) != port {
		t.Fatalf("port file holds %q (%v), want %s", b, err, port)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, PortFile): 0o600, g.AdminSocket(): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}

	laptop := newAgent(t, "laptop")
	if err := g.PairAgent(t.Context(), laptop); err != nil {
		t.Fatal(err)
	}
	if ca := laptop.PinnedCA(); ca == nil || !ca.Equal(g.gw.CA()) {
		t.Fatal("the agent does not pin the local gateway's CA after pairing")
	}
	if st := laptop.Status(); !slices.Equal(st.Gateways, []string{g.Address()}) || st.GatewayName != "Test local gateway" {
		t.Fatalf("agent status after pairing: %+v", st)
	}
	stopLaptop := runAgent(t, laptop)
	waitState(t, laptop, node.StateConnected)
	waitOnline(t, g, laptop.Status().DeviceID)

	before := devices(t, g)
	if len(before) != 1 || before[0].ID.String() != laptop.Status().DeviceID {
		t.Fatalf("devices after pairing: %v", before)
	}
	if err := g.PairAgent(t.Context(), laptop); err != nil {
		t.Fatalf("pairing an agent that is already paired: %v", err)
	}
	if after := devices(t, g); len(after) != 1 || !after[0].PairedAt.Equal(before[0].PairedAt) {
		t.Fatalf("pairing again changed the devices: %v, then %v", before, after)
	}
	if st := laptop.Status(); st.State != node.StateConnected {
		t.Fatalf("pairing again disturbed the session: %+v", st)
	}
	// No code was left waiting for a person.
	if reqs, err := g.pending(t.Context()); err != nil || len(reqs) != 0 {
		t.Fatalf("pending requests %v (%v), want none", reqs, err)
	}

	// A device the gateway revoked is told so, not paired again.
	if _, err := g.gw.RevokeDevice(t.Context(), laptop.Status().DeviceID); err != nil {
		t.Fatal(err)
	}
	waitState(t, laptop, node.StateRevoked)
	if err := stopLaptop(); !errors.Is(err, carrier.ErrRevoked) {
		t.Fatalf("the revoked agent's Run returned %v", err)
	}
	if err := g.PairAgent(t.Context(), laptop); !errors.Is(err, pairing.ErrDeviceRevoked) {
		t.Fatalf("pairing a revoked device: %v, want ErrDeviceRevoked", err)
	}
}

// connectedAgent is a new agent paired with g and running, once connected.
func connectedAgent(t *testing.T, g *Gateway, name string) *node.Agent {
	t.Helper()
	a := newAgent(t, name)
	if err := g.PairAgent(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	waitState(t, a, node.StateConnected)
	return a
}

// TestStopIsNotARestart: a local gateway turned off does not ask its nodes
// to come back within a window, as a gateway that restarts does; they are
// told it shut down, and back off.
func TestStopIsNotARestart(t *testing.T) {
	g := start(t, filepath.Join(t.TempDir(), "local-gateway"))
	laptop := connectedAgent(t, g, "laptop")
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	waitState(t, laptop, node.StateOffline)
	if st := laptop.Status(); !strings.Contains(st.LastError, carrier.ErrGatewayShutdown.Error()) || strings.Contains(st.LastError, "restarting") {
		t.Errorf("after the local gateway was turned off, the node says %q; want that the gateway shut down, not that it restarts", st.LastError)
	}
}

// TestRestartKeepsAddress: stopped and started again on the same data
// directory, the gateway is at the same address, and the paired device
// finds it without pairing again.
func TestRestartKeepsAddress(t *testing.T) {
	dir := t.TempDir()
	g, err := Start(context.Background(), Options{DataDir: dir, Logger: testlog.New(t, "who", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(g.Name(), NamePrefix) || len(g.Name()) > pairing.MaxNameLength {
		t.Errorf("default name %q", g.Name())
	}
	addr := g.Address()
	laptop := connectedAgent(t, g, "laptop")

	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("Done is open after Stop")
	}
	if g.Err() != nil || g.Stop() != nil {
		t.Fatalf("a gateway stopped as asked reports %v", g.Err())
	}
	if _, err := g.MintCode(t.Context(), 0); !errors.Is(err, ErrStopped) {
		t.Fatalf("minting on a stopped gateway: %v", err)
	}
	if _, err := os.Stat(g.AdminSocket()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("admin socket left behind: %v", err)
	}
	waitState(t, laptop, node.StateOffline)

	g2 := start(t, dir)
	if g2.Address() != addr {
		t.Fatalf("restarted at %s, was at %s", g2.Address(), addr)
	}
	waitState(t, laptop, node.StateConnected)
	waitOnline(t, g2, laptop.Status().DeviceID)
	if err := g2.PairAgent(t.Context(), laptop); err != nil {
		t.Fatalf("the restarted gateway does not recognise its device: %v", err)
	}
	if n := len(devices(t, g2)); n != 1 {
		t.Fatalf("%d devices after the restart, want 1", n)
	}
}

// TestPortChangedPairsAgain: when the gateway had to take a new port (its
// port file was deleted), PairAgent tells this device the new address by
// pairing it again, as the same device.
func TestPortChangedPairsAgain(t *testing.T) {
	dir := t.TempDir()
	g, err := Start(context.Background(), Options{DataDir: dir, Logger: testlog.New(t, "who", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	laptop := newAgent(t, "laptop")
	if err := g.PairAgent(t.Context(), laptop); err != nil {
		t.Fatal(err)
	}
	oldAddr := g.Address()
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	// Hold the old port so that the new start cannot draw it again.
	hold, err := net.Listen("tcp", oldAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if err := os.Remove(filepath.Join(dir, PortFile)); err != nil {
		t.Fatal(err)
	}
	g2 := start(t, dir)
	if g2.Address() == oldAddr {
		t.Fatalf("new start took the held port %s", oldAddr)
	}
	id := laptop.Status().DeviceID
	if err := g2.PairAgent(t.Context(), laptop); err != nil {
		t.Fatal(err)
	}
	if st := laptop.Status(); !slices.Equal(st.Gateways, []string{g2.Address()}) || st.DeviceID != id {
		t.Fatalf("after pairing again: %+v; want gateway %s and device %s", st, g2.Address(), id)
	}
	if n := len(devices(t, g2)); n != 1 {
		t.Fatalf("%d devices, want 1", n)
	}
	runAgent(t, laptop)
	waitState(t, laptop, node.StateConnected)
}

// TestRememberedPortTaken: when another program holds the remembered port
// (TCP or UDP), Start fails and says which port; once it is free again the
// gateway starts there.
func TestRememberedPortTaken(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			dir := t.TempDir()
			g, err := Start(context.Background(), Options{DataDir: dir, Logger: testlog.New(t, "who", "gateway")})
			if err != nil {
				t.Fatal(err)
			}
			addr := g.Address()
			_, port, _ := net.SplitHostPort(addr)
			if err := g.Stop(); err != nil {
				t.Fatal(err)
			}

			var squatter interface{ Close() error }
			if network == "tcp" {
				squatter, err = net.Listen("tcp", addr)
			} else {
				squatter, err = net.ListenPacket("udp", addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			g2, err := Start(context.Background(), Options{DataDir: dir, Logger: testlog.New(t, "who", "gateway")})
			if err == nil {
				g2.Stop()
				squatter.Close()
				t.Fatal("started although the remembered port is taken")
			}
			if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "port "+port) {
				t.Fatalf("error %q does not name port %s as in use", err, port)
			}
			t.Log(err)
			squatter.Close()

			g3 := start(t, dir)
			if g3.Address() != addr {
				t.Fatalf("started at %s, want %s", g3.Address(), addr)
			}
		})
	}
}

// TestSecondInstanceRefused: one data directory serves one gateway.
func TestSecondInstanceRefused(t *testing.T) {
	dir := t.TempDir()
	start(t, dir)
	if g, err := Start(context.Background(), Options{DataDir: dir}); err == nil {
		g.Stop()
		t.Fatal("a second local gateway started on the same data directory")
	} else if !strings.Contains(err.Error(), "already") {
		t.Fatalf("second instance: %v", err)
	}
}

// TestPairedElsewhere: a device paired with another gateway is not taken
// over.
func TestPairedElsewhere(t *testing.T) {
	here := start(t, t.TempDir())
	other := start(t, t.TempDir())
	laptop := newAgent(t, "laptop")
	if err := other.PairAgent(t.Context(), laptop); err != nil {
		t.Fatal(err)
	}
	err := here.PairAgent(t.Context(), laptop)
	if !errors.Is(err, ErrPairedElsewhere) {
		t.Fatalf("pairing a device paired elsewhere: %v", err)
	}
	t.Log(err)
	if !laptop.PinnedCA().Equal(other.gw.CA()) {
		t.Fatal("the agent's pairing changed")
	}
	if n := len(devices(t, here)); n != 0 {
		t.Fatalf("%d devices on this gateway, want 0", n)
	}
}

// nextRequest waits for the next pairing request.
func nextRequest(t *testing.T, reqs <-chan Request, paired <-chan error) Request {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case r, ok := <-reqs:
		if !ok {
			t.Fatal("the requests channel closed")
		}
		return r
	case err := <-paired:
		t.Fatalf("pairing ended before a decision: %v", err)
	case <-timer.C:
		t.Fatal("no pairing request showed")
	}
	return Request{}
}

type pairAttempt struct {
	pending chan pairclient.Pending
	done    chan error
}

// pairByPIN pairs the agent with a code's PIN and address in the
// background.
func pairByPIN(t *testing.T, a *node.Agent, code Code) pairAttempt {
	p := pairAttempt{pending: make(chan pairclient.Pending, 1), done: make(chan error, 1)}
	go func() {
		_, err := a.Pair(t.Context(), node.PairOptions{
			Gateway: code.Address, PIN: code.PIN,
			OnPending: func(pp pairclient.Pending) { p.pending <- pp },
		})
		p.done <- err
	}()
	return p
}

func (p pairAttempt) result(t *testing.T) error {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case err := <-p.done:
		return err
	case <-timer.C:
		t.Fatal("pairing did not finish")
	}
	return nil
}

// decodeQR reads a rendered code back.
func decodeQR(t *testing.T, pngBytes []byte) string {
	t.Helper()
	text, err := qr.DecodeReader(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatalf("the QR code image holds no readable code: %v", err)
	}
	return text
}

// TestMintCodeApproveReject: "Show pairing code…" for other devices. The
// code pairs by PIN or by its QR link; the request waits for the person,
// shows on Requests once with the device's verification code, and Approve
// or Reject decides it.
func TestMintCodeApproveReject(t *testing.T) {
	g := start(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reqs := g.Requests(ctx)

	code, err := g.MintCode(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if code.Address != g.Address() || code.PIN == "" {
		t.Fatalf("code %+v", code)
	}
	if d := time.Until(code.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute {
		t.Fatalf("code expires in %s, want the default 10 minutes", d)
	}
	text := decodeQR(t, code.QRPNG)
	if text != code.Link {
		t.Fatalf("QR code reads %q, want the link %q", text, code.Link)
	}
	link, err := pairing.ParseLink(text, time.Now())
	if err != nil || !slices.Equal(link.Gateways, []string{g.Address()}) || link.Name != "Test local gateway" {
		t.Fatalf("link %+v (%v)", link, err)
	}

	// Approve: the device pairs by PIN.
	phone := newAgent(t, "phone")
	attempt := pairByPIN(t, phone, code)
	r := nextRequest(t, reqs, attempt.done)
	p := <-attempt.pending
	if r.ID != p.RequestID || r.VerificationCode != p.VerificationCode || r.Name != "phone" || r.DeviceID != phone.Status().DeviceID || r.Platform == "" {
		t.Fatalf("request %+v, device shows %+v", r, p)
	}
	if d := time.Until(r.ExpiresAt); d <= 0 || d > RequestTTL {
		t.Fatalf("request expires in %s", d)
	}
	if err := g.Approve(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	if err := attempt.result(t); err != nil {
		t.Fatalf("pairing after approval: %v", err)
	}
	if !phone.PinnedCA().Equal(g.gw.CA()) {
		t.Fatal("the approved device does not pin the local gateway")
	}
	runAgent(t, phone)
	waitState(t, phone, node.StateConnected)
	if err := g.Approve(t.Context(), r.ID); err == nil || !strings.Contains(err.Error(), "no longer pending") {
		t.Fatalf("approving twice: %v", err)
	}

	// Reject: the device pairs by the QR link and is turned away.
	code2, err := g.MintCode(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(code2.ExpiresAt); d < 50*time.Second || d > time.Minute {
		t.Fatalf("code expires in %s, want 1 minute", d)
	}
	tablet := newAgent(t, "tablet")
	done := make(chan error, 1)
	go func() {
		_, err := tablet.Pair(t.Context(), node.PairOptions{Link: code2.Link})
		done <- err
	}()
	r2 := nextRequest(t, reqs, done)
	if r2.Name != "tablet" || r2.ID == r.ID {
		t.Fatalf("second request %+v; the first was %+v", r2, r)
	}
	if err := g.Reject(t.Context(), r2.ID); err != nil {
		t.Fatal(err)
	}
	if err := (pairAttempt{done: done}).result(t); !errors.Is(err, pairing.ErrRejected) {
		t.Fatalf("pairing after rejection: %v, want ErrRejected", err)
	}
	if tablet.Paired() {
		t.Fatal("the rejected device is paired")
	}
	if n := len(devices(t, g)); n != 1 {
		t.Fatalf("%d devices, want 1 (the approved phone)", n)
	}

	if _, err := g.MintCode(t.Context(), time.Second); err == nil {
		t.Fatal("a code living 1 s was minted")
	}
	if err := g.Approve(t.Context(), "nonexistent"); err == nil || strings.Contains(err.Error(), "rpc error") {
		t.Fatalf("approving an unknown request: %v", err)
	}

	// The channel closes when its context ends.
	cancel()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for {
		select {
		case extra, ok := <-reqs:
			if !ok {
				return
			}
			t.Fatalf("a request was delivered twice or after the fact: %+v", extra)
		case <-timer.C:
			t.Fatal("the requests channel stayed open after its context ended")
		}
	}
}

// TestRequestsCloseWhenGatewayStops: a watcher does not outlive the
// gateway.
func TestRequestsCloseWhenGatewayStops(t *testing.T) {
	g, err := Start(context.Background(), Options{DataDir: t.TempDir(), Logger: testlog.New(t, "who", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	reqs := g.Requests(t.Context())
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case _, ok := <-reqs:
		if ok {
			t.Fatal("a request from a stopped gateway")
		}
	case <-timer.C:
		t.Fatal("the requests channel stayed open after the gateway stopped")
	}
}

// TestStartContextStops: the gateway stops when Start's context ends.
func TestStartContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g, err := Start(ctx, Options{DataDir: t.TempDir(), Logger: testlog.New(t, "who", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case <-g.Done():
	case <-timer.C:
		t.Fatal("the gateway kept running after its context ended")
	}
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestPollRequests drives the polling loop by hand: each request is sent
// once, however often it is listed, errors are survived, and the loop
// ends with its context. A list call can only start once the previous
// round's sends are done (out is unbuffered), so "the next list call
// happened" proves "nothing more was sent".
func TestPollRequests(t *testing.T) {
	type answer struct {
		reqs []Request
		err  error
	}
	answers := make(chan answer)
	tick := make(chan time.Time)
	out := make(chan Request)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		list := func(ctx context.Context) ([]Request, error) {
			select {
			case a := <-answers:
				return a.reqs, a.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		pollRequests(ctx, list, tick, out, testlog.New(t, "who", "poll"))
	}()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	step := func(what string, send func() bool) {
		t.Helper()
		if !send() {
			t.Fatalf("timed out: %s", what)
		}
	}
	answerWith := func(reqs []Request, err error) {
		step("list call", func() bool {
			select {
			case answers <- answer{reqs, err}:
				return true
			case <-timer.C:
				return false
			}
		})
	}
	expect := func(id string) {
		t.Helper()
		select {
		case r := <-out:
			if r.ID != id {
				t.Fatalf("got request %s, want %s", r.ID, id)
			}
		case <-timer.C:
			t.Fatalf("timed out waiting for request %s", id)
		}
	}
	nextTick := func() {
		step("tick", func() bool {
			select {
			case tick <- time.Now():
				return true
			case <-timer.C:
				return false
			}
		})
	}
	a, b := Request{ID: "a"}, Request{ID: "b"}
	answerWith([]Request{a}, nil) // at once, before any tick
	expect("a")
	nextTick()
	answerWith([]Request{a, b}, nil)
	expect("b")
	nextTick()
	answerWith(nil, errors.New("store busy"))
	nextTick()
	answerWith([]Request{a, b}, nil)
	nextTick()
	answerWith([]Request{b}, nil) // a was decided
	nextTick()
	answerWith([]Request{b}, nil)
	cancel()
	select {
	case <-done:
	case r := <-out:
		t.Fatalf("request %s sent again", r.ID)
	case <-timer.C:
		t.Fatal("the loop did not end with its context")
	}
}

// TestRunHeadless: the headless gateway says where it listens and where its
// admin socket is; the admin CLI's calls work on that socket, a device
// pairs with a code minted there, and the gateway stops with its context.
func TestRunHeadless(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- RunHeadless(ctx, Options{DataDir: dir, Name: "Headless", Logger: testlog.New(t, "who", "gateway")}, &out)
	}()

	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for !strings.Contains(out.String(), "palyra pairing code") {
		select {
		case <-out.Wrote():
		case err := <-done:
			t.Fatalf("RunHeadless returned %v; output %q", err, out.String())
		case <-timer.C:
			t.Fatalf("RunHeadless printed %q", out.String())
		}
	}
	text := out.String()
	t.Log(text)
	var addr, socket string
	for _, line := range strings.Split(text, "\n") {
		if _, a, ok := strings.Cut(line, " listening on "); ok {
			addr = a
		}
		if s, ok := strings.CutPrefix(line, "admin socket "); ok {
			socket = s
		}
	}
	wantSocket := filepath.Join(dir, AdminSocketFile)
	if socket != wantSocket || !strings.Contains(text, "--admin-socket "+wantSocket) {
		t.Fatalf("admin socket %q, want %s", socket, wantSocket)
	}
	port, _ := os.ReadFile(filepath.Join(dir, PortFile))
	if addr != net.JoinHostPort(DefaultHost, strings.TrimSpace(string(port))) {
		t.Fatalf("listening on %q; port file %q", addr, port)
	}

	// What `palyra pairing code --admin-socket …` does.
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	code, err := adminv1.NewAdminClient(conn).MintNodePairingCode(t.Context(), &adminv1.MintNodePairingCodeRequest{AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	server := newAgent(t, "server")
	if _, err := server.Pair(t.Context(), node.PairOptions{Link: code.Link}); err != nil {
		t.Fatal(err)
	}
	if st := server.Status(); !slices.Equal(st.Gateways, []string{addr}) {
		t.Fatalf("paired device's gateways %v, want %s", st.Gateways, addr)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-timer.C:
		t.Fatal("RunHeadless did not stop with its context")
	}
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("admin socket left behind: %v", err)
	}
}

// TestOptions: bad options fail before anything is opened.
func TestOptions(t *testing.T) {
	long := strings.Repeat("d", 120)
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"long name", Options{Name: strings.Repeat("n", 65)}, "at most 64 bytes"},
		{"bad listen", Options{Listen: "localhost"}, "listen address"},
		{"bad port", Options{Listen: "127.0.0.1:99999"}, "invalid port"},
		{"long socket path", Options{DataDir: filepath.Join(t.TempDir(), long)}, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.DataDir == "" {
				tc.opts.DataDir = t.TempDir()
			}
			g, err := Start(t.Context(), tc.opts)
			if err == nil {
				g.Stop()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}

	if n := defaultName(); !strings.HasPrefix(n, NamePrefix) && n != "Palyra local gateway" || len(n) > pairing.MaxNameLength {
		t.Errorf("default name %q", n)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, PortFile), []byte("not a port\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if g, err := Start(t.Context(), Options{DataDir: dir}); err == nil {
		g.Stop()
		t.Fatal("started with a broken port file")
	} else if !strings.Contains(err.Error(), PortFile) {
		t.Fatalf("broken port file: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/run/user/1000/palyra/admin.sock":                                     "/run/user/1000/palyra/admin.sock",
		"/Users/a/Library/Application Support/Palyra/local-gateway/admin.sock": "'/Users/a/Library/Application Support/Palyra/local-gateway/admin.sock'",
		"/tmp/it's": `'/tmp/it'\''s'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
