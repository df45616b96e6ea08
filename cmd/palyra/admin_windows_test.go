package main

import (
	"context"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/testwine"
)

// TestAdminOverEndpointFile: on Windows the admin commands reach the
// gateway through the loopback port its endpoint file names, with the
// file's token; a file with another token is refused, saying so without
// quoting either token; a stopped gateway takes its file with it. It runs
// under Wine (TestWindowsAdminUnderWine).
//
// Wine has no UDP, so the gateway here is gateway.New with a PacketConn
// that carries nothing (QUIC is not what is tested); TCP, the store and
// the admin API are real. Elsewhere `palyra gateway run` opens the same.
func TestAdminOverEndpointFile(t *testing.T) {
	c := newCLI(t)
	endpointFile := c.env["PALYRA_ADMIN_SOCKET"]
	dataDir := filepath.Join(testwine.TempDir(t), "gateway")
	quiet := newSilentPacketConn()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, gateway.Config{
		DataDir: dataDir, Name: "Windows gateway", Listen: "127.0.0.1:0", AdminSocket: endpointFile, PacketConn: quiet,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- g.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		<-ran
		quiet.Close()
	})
	// Before the directories' cleanup, registered earlier.
	t.Cleanup(stop)
	if got := g.AdminAddr().String(); got != endpointFile {
		t.Errorf("AdminAddr() = %s, want the endpoint file %s", got, endpointFile)
	}

	var code struct{ PIN string }
	c.mustJSON(&code, "pairing", "code", "--json")
	if len(code.PIN) != 11 {
		t.Fatalf("pairing code over the endpoint: %+v", code)
	}
	var reqs []map[string]any
	c.mustJSON(&reqs, "pairing", "list", "--json")
	if len(reqs) != 0 {
		t.Fatalf("pairing list: %v", reqs)
	}

	// The same port, another token.
	good, err := os.ReadFile(endpointFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	if len(lines) != 3 {
		t.Fatalf("endpoint file:\n%s", good)
	}
	token := lines[2]
	forgedToken := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	forged := filepath.Join(filepath.Dir(endpointFile), "forged.endpoint")
	if err := os.WriteFile(forged, []byte(lines[0]+"\n"+lines[1]+"\n"+forgedToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, stderr := c.run(nil, "", "nodes", "list", "--admin-socket", forged)
	if rc != 1 || !strings.Contains(stderr, "refused") || !strings.Contains(stderr, "wrong token") {
		t.Errorf("nodes list with a wrong token: exit %d, %q", rc, stderr)
	}
	if strings.Contains(stderr, token) || strings.Contains(stderr, forgedToken) {
		t.Errorf("the refusal quotes a token: %q", stderr)
	}

	stop()
	if _, err := os.Stat(endpointFile); !os.IsNotExist(err) {
		t.Errorf("the endpoint file outlived its gateway: %v", err)
	}
	rc, _, stderr = c.run(nil, "", "nodes", "list")
	if rc != 1 || !strings.Contains(stderr, "no gateway admin socket at "+endpointFile) {
		t.Errorf("nodes list with the gateway stopped: exit %d, %q", rc, stderr)
	}
}

// silentPacketConn is a PacketConn on which nothing arrives and whatever
// is sent goes nowhere: the gateway's QUIC side where there is no UDP. A
// read deadline that has passed ends its reads, which is how quic-go stops
// its reader; a later one is not needed here and is ignored.
type silentPacketConn struct {
	closed, expired   chan struct{}
	closeOnce, expire sync.Once
}

func newSilentPacketConn() *silentPacketConn {
	return &silentPacketConn{closed: make(chan struct{}), expired: make(chan struct{})}
}

func (p *silentPacketConn) ReadFrom([]byte) (int, net.Addr, error) {
	select {
	case <-p.closed:
		return 0, nil, net.ErrClosed
	case <-p.expired:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (p *silentPacketConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		p.expire.Do(func() { close(p.expired) })
	}
	return nil
}

func (p *silentPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (p *silentPacketConn) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}
func (p *silentPacketConn) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
}
func (p *silentPacketConn) SetDeadline(t time.Time) error    { return p.SetReadDeadline(t) }
func (p *silentPacketConn) SetWriteDeadline(time.Time) error { return nil }
