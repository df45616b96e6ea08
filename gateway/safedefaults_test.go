package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/internal/testnetns"
	"github.com/palyra/palyra-go/node"
)

// TestSecondGatewayOnSameDirRefused: while a gateway runs on a data
// directory, a second one on it is refused, naming the first's PID, and
// leaves the first serving; once the first stops, the directory is free.
func TestSecondGatewayOnSameDirRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rg := startGateway(t, dir, "127.0.0.1:0", nil)
	_, err := gateway.New(t.Context(), gateway.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminSocket: filepath.Join(t.TempDir(), "admin.sock")})
	want := fmt.Sprintf("another gateway (pid %d) is using %s", os.Getpid(), dir)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second gateway: %v, want an error saying %q", err, want)
	}
	mint(t, rg, false) // the first still serves
	rg.stop()
	g, err := gateway.New(t.Context(), gateway.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminSocket: filepath.Join(t.TempDir(), "admin.sock")})
	if err != nil {
		t.Fatalf("gateway after the first stopped: %v", err)
	}
	runCtx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := g.Run(runCtx); err != nil {
		t.Fatal(err)
	}
}

// TestInvalidConfigWritesNothing: every address is checked before New
// creates the data directory or the CA, so a mistyped flag leaves nothing
// behind.
func TestInvalidConfigWritesNothing(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  gateway.Config
		want string
	}{
		{"metrics on every interface", gateway.Config{MetricsListen: "0.0.0.0:9464"}, "0.0.0.0 means every interface"},
		{"metrics not loopback", gateway.Config{MetricsListen: "192.0.2.1:9464"}, "not a loopback address"},
		{"listen without port", gateway.Config{Listen: "127.0.0.1"}, "want HOST:PORT"},
		{"listen port too big", gateway.Config{Listen: "127.0.0.1:70000"}, `port "70000" is not a number from 0 to 65535`},
		{"advertise wildcard", gateway.Config{Advertise: []string{"[::]:7443"}}, "names no host nodes could dial"},
		{"advertise port 0", gateway.Config{Advertise: []string{"gw.example:0"}}, "has port 0"},
		{"no admin socket", gateway.Config{AdminSocket: "-"}, "an admin socket path is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.DataDir = filepath.Join(t.TempDir(), "gateway")
			if cfg.Listen == "" {
				cfg.Listen = "127.0.0.1:0"
			}
			switch cfg.AdminSocket {
			case "-":
				cfg.AdminSocket = ""
			default:
				cfg.AdminSocket = filepath.Join(t.TempDir(), "admin.sock")
			}
			cfg.Logger = testlog.New(t)
			_, err := gateway.New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error saying %q", err, tt.want)
			}
			if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data directory exists after a refused config (stat: %v)", err)
			}
		})
	}
}

// TestWildcardListenAdvertisesMachineAddresses runs in a network namespace
// of its own, where listening on every interface reaches only what the
// test puts there. With nothing but loopback, a wildcard --listen without
// --advertise is refused with the hint; with an address on the machine,
// the pairing link names it with the port, never gw=[::].
func TestWildcardListenAdvertisesMachineAddresses(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	cfg := gateway.Config{DataDir: filepath.Join(t.TempDir(), "gateway"), Listen: "[::]:0", AdminSocket: filepath.Join(t.TempDir(), "admin.sock")}
	_, err := gateway.New(t.Context(), cfg)
	if want := "pass the address nodes should dial with --advertise HOST:PORT"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("wildcard listen with only loopback: %v, want an error saying %q", err, want)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory exists after the refusal (stat: %v)", err)
	}

	testnetns.Run(t, "ip", "addr", "add", "192.0.2.10/32", "dev", "lo")
	rg := startGateway(t, t.TempDir(), "[::]:0", nil)
	_, port, err := net.SplitHostPort(rg.g.Addresses()[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(rg.g.Addresses(), ","), "192.0.2.10:"+port; got != want {
		t.Errorf("Addresses() = %s, want %s", got, want)
	}
	link := mint(t, rg, false).GetLink()
	if !strings.Contains(link, "192.0.2.10%3A"+port) && !strings.Contains(link, "192.0.2.10:"+port) {
		t.Errorf("the pairing link does not name 192.0.2.10:%s: %s", port, link)
	}
	if strings.Contains(link, "%5B%3A%3A%5D") || strings.Contains(link, "[::]") {
		t.Errorf("the pairing link names the wildcard address: %s", link)
	}
}

// A second agent run on a node's config directory is refused with words
// that name the running one, and the running one goes on.
func TestSecondNodeOnSameConfigDirRefused(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	dir := t.TempDir()
	first := agentIn(t, dir, "laptop")
	if _, err := first.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: mint(t, rg, true).Pin}); err != nil {
		t.Fatal(err)
	}
	stop := runAgent(first)
	defer stop()
	waitState(t, first, node.StateConnected)
	second := agentIn(t, dir, "laptop")
	err := second.Run(t.Context())
	if want := fmt.Sprintf("another node (pid %d) is using %s", os.Getpid(), dir); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a second agent on the same config dir: %v, want %q", err, want)
	}
	if st := first.Status(); st.State != node.StateConnected {
		t.Errorf("the first agent after the refusal: %+v", st)
	}
}
