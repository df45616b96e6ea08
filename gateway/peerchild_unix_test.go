//go:build unix

package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testpg"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/node"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// peerChildEnv, in a test binary's environment, makes it a gateway (its
// spec the variable's JSON) instead of running tests: a gateway a test can
// kill with SIGKILL, leaving its lease and routes in the database as a
// crash would. Its TCP listener and UDP socket are files 3 and 4.
const peerChildEnv = "PALYRA_TEST_PEER_GATEWAY"

type peerChildSpec struct {
	DataDir, Database, ID string
	Advertise             []string
	PeerLease             time.Duration
}

// peerChildMain runs the child's gateway until it is killed; in any other
// process it returns at once.
func peerChildMain() {
	raw, ok := os.LookupEnv(peerChildEnv)
	if !ok {
		return
	}
	var spec peerChildSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "peer child:", err)
		os.Exit(2)
	}
	tcp, err := net.FileListener(os.NewFile(3, "tcp"))
	if err == nil {
		var udp net.PacketConn
		if udp, err = net.FilePacketConn(os.NewFile(4, "udp")); err == nil {
			err = runPeerChild(spec, tcp, udp)
		}
	}
	fmt.Fprintln(os.Stderr, "peer child:", err)
	os.Exit(2)
}

func runPeerChild(spec peerChildSpec, tcp net.Listener, udp net.PacketConn) error {
	ctx := context.Background()
	g, err := gateway.New(ctx, gateway.Config{
		DataDir: spec.DataDir, Name: "Test Gateway", AdminSocket: filepath.Join(spec.DataDir, "admin.sock"),
		TCPListener: tcp, PacketConn: udp, Advertise: spec.Advertise, LeaseTTL: 3 * time.Second,
		Database: spec.Database, GatewayID: spec.ID, PeerLeaseTTL: spec.PeerLease,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Serving: func() { fmt.Println("serving") },
	})
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

// startPeerChild starts gateway id in a child process at ep, advertising
// ep's address as startPeer does, and returns the child, serving; ep's
// sockets are the child's alone from then on.
func startPeerChild(t *testing.T, db testpg.Database, id string, ep endpoint) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(peerChildSpec{DataDir: t.TempDir(), Database: db.URL, ID: id, Advertise: []string{ep.addr}, PeerLease: peerLease})
	tcpFile, err := ep.tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	udpFile, err := ep.udp.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), peerChildEnv+"="+string(spec))
	cmd.ExtraFiles = []*os.File{tcpFile, udpFile}
	var logs syncbuf.Buffer
	cmd.Stderr = &logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tcpFile.Close()
	udpFile.Close()
	ep.tcp.Close()
	ep.udp.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gateway %s's log:\n%s", id, logs.String())
		}
	})
	serving := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "serving" {
				serving <- nil
				return
			}
		}
		serving <- fmt.Errorf("the child ended before it served: %v", sc.Err())
	}()
	if err := testwait.Recv(t, serving, 60*time.Second, "gateway "+id+" serving"); err != nil {
		t.Fatalf("%v; its log:\n%s", err, logs.String())
	}
	return cmd
}

// A gateway dies with SIGKILL while it holds a node: nothing tells the
// others, so its lease and routes stay in the database until the lease
// lapses. The node knew only the dead gateway's address from its pairing,
// and the others' from that gateway's Welcome: it reconnects through one
// of those, calls through the other gateways reach it again, and no
// listing shows it online twice or through the dead gateway.
func TestGatewayKilledNodeMovesOn(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	epA, epB, epC := listenEndpoint(t), listenEndpoint(t), listenEndpoint(t)
	a := startPeer(t, db, "gw-a", epA)
	c := startPeer(t, db, "gw-c", epC)
	// B joins after A and C: its first Welcome names them.
	b := startPeerChild(t, db, "gw-b", epB)

	code, err := a.admin.MintNodePairingCode(t.Context(), &adminv1.MintNodePairingCodeRequest{AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	laptop := agentIn(t, dir, "laptop")
	if _, err := laptop.Pair(t.Context(), node.PairOptions{Gateway: epB.addr, PIN: code.Pin}); err != nil {
		t.Fatalf("pairing through B: %v", err)
	}
	if got := laptop.Status().Gateways; !sameAddresses(got, []string{epA.addr, epB.addr, epC.addr}) || got[0] != epB.addr {
		t.Fatalf("pairing through B gave the addresses %v, want B's first, then A's and C's", got)
	}
	// As if it had paired while B was alone: it knows B's address only.
	laptop = keepPairingGateway(t, laptop, agentConfig(t, dir, "laptop"))
	if got := laptop.Status().Gateways; !slices.Equal(got, []string{epB.addr}) {
		t.Fatalf("the node knows %v, want B's address only", got)
	}
	stop := runAgent(laptop)
	defer stop()
	waitState(t, laptop, node.StateConnected)
	id := laptop.Status().DeviceID
	waitHeld(t, a, id, "gw-b")
	waitHeld(t, c, id, "gw-b")
	if resp := invokeAdmin(t, a, id, "system.info", "", 0); !resp.Ok {
		t.Fatalf("system.info through A to B: %s: %s", resp.ErrorCode, resp.ErrorMessage)
	}
	all := []string{epA.addr, epB.addr, epC.addr}
	waitStatus(t, laptop, "keeping the addresses of B's Welcome", func(st node.Status) bool { return sameAddresses(st.Gateways, all) })
	if conf, err := node.ReadConfig(dir); err != nil || !sameAddresses(conf.Gateways, all) {
		t.Fatalf("node.json names %v (%v), want %v", conf.Gateways, err, all)
	}

	if err := b.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.Wait()
	killed := time.Now()
	holder := waitHeldBy(t, a, id, "gw-a", "gw-c")
	waitHeld(t, c, id, holder)
	t.Logf("the node was held by %s %v after B was killed", holder, time.Since(killed).Round(time.Millisecond))
	for _, rg := range []*runningGateway{a, c} {
		if resp := invokeAdmin(t, rg, id, "system.info", "", 0); !resp.Ok {
			t.Fatalf("system.info through %s after B died: %s: %s", rg.g.GatewayID(), resp.ErrorCode, resp.ErrorMessage)
		}
	}
	// B's lease lapses: the others see it dead.
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		peers, err := c.g.Peers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var bLive, aLive bool
		for _, p := range peers {
			bLive = bLive || (p.ID == "gw-b" && p.Live)
			aLive = aLive || (p.ID == "gw-a" && p.Live)
		}
		if !bLive && aLive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("C still sees B live (or A dead) 30 s later: %+v", peers)
		}
		<-tick.C
	}
	waitHeld(t, c, id, holder)
}
