package connlimit_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/connlimit"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testwait"
)

const waitTimeout = 10 * time.Second

// serve accepts from ln until it is closed, sending each connection on.
func serve(t *testing.T, ln net.Listener) <-chan net.Conn {
	t.Helper()
	conns := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		testwait.Recv(t, done, waitTimeout, "the accept loop to end")
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return conns
}

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: waitTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedAtAccept dials addr from the loopback address from and checks
// that the server closed the connection without reading or writing
// anything. The server's reset can reach the client before its connect
// call returns, so a dial that fails with ECONNRESET is that refusal too.
func refusedAtAccept(t *testing.T, from, addr string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: waitTimeout}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("a connection over the cap read %d bytes, %v; want it closed by the server", n, err)
	}
}

func TestListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused []connlimit.Reason
	lim := newLimiter(t, connlimit.Config{What: "test connections", Max: 3, MaxPerSource: 2,
		Refused: func(r connlimit.Reason) { refused = append(refused, r) }})
	ln := connlimit.NewListener(inner, lim)
	if ln.Addr() != inner.Addr() {
		t.Fatalf("Addr() = %v, want %v", ln.Addr(), inner.Addr())
	}
	conns := serve(t, ln)
	addr := inner.Addr().String()
	accepted := func(what string) *connlimit.Conn {
		t.Helper()
		c, ok := testwait.Recv(t, conns, waitTimeout, what).(*connlimit.Conn)
		if !ok {
			t.Fatalf("%s is not a *connlimit.Conn", what)
		}
		return c
	}

	dialFrom(t, "127.0.0.1", addr)
	first := accepted("the first connection")
	dialFrom(t, "127.0.0.1", addr)
	accepted("the second connection")
	refusedAtAccept(t, "127.0.0.1", addr)
	// Another source has its own share...
	fromB := dialFrom(t, "127.0.0.2", addr)
	third := accepted("the first connection from 127.0.0.2")
	// ...until every slot is taken.
	refusedAtAccept(t, "127.0.0.2", addr)
	testwait.None(t, conns, "connection over the caps")
	if n := lim.Held(); n != 3 {
		t.Fatalf("Held() = %d", n)
	}

	// Closing a connection gives its slot back.
	first.Close()
	dialFrom(t, "127.0.0.1", addr)
	accepted("a connection after one closed")

	// An authenticated connection gives its slot back and stays open.
	third.Authenticated()
	if n := lim.Held(); n != 2 {
		t.Fatalf("Held() = %d after Authenticated", n)
	}
	dialFrom(t, "127.0.0.2", addr)
	accepted("a connection after one authenticated")
	if _, err := fromB.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	_ = third.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(third, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("reading from the authenticated connection: %q, %v", buf, err)
	}
	// Closing it after authentication does not give a second slot back.
	third.Close()
	if n := lim.Held(); n != 3 {
		t.Fatalf("Held() = %d after closing an authenticated connection", n)
	}
	if !slices.Equal(refused, []connlimit.Reason{connlimit.PerSource, connlimit.Total}) {
		t.Fatalf("refusals %v", refused)
	}
}

// TestReleaseOnVerified: over TLS that only requests a client certificate,
// a client presenting one that verifies gives its slot back at the
// handshake; one presenting none, or one that does not verify, keeps its
// slot, and all three are served.
func TestReleaseOnVerified(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test")
	stranger := testpki.NewDevice(t, testpki.NewCA(t, "another"))
	device := testpki.NewDevice(t, ca)
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequestClientCert,
		Certificates: []tls.Certificate{*testpki.ServerCert(t, ca)},
	}
	conf := connlimit.ReleaseOnVerified(base, func(raw [][]byte) error {
		_, err := identity.VerifyDeviceCertificate(ca.Certificate(), raw, time.Now())
		return err
	})

	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := newLimiter(t, connlimit.Config{What: "test connections"})
	conns := serve(t, connlimit.NewListener(inner, lim))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())

	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		held int
	}{
		{"no certificate", nil, 1},
		{"a certificate of another CA", stranger.Cert, 1},
		{"a device certificate", device.Cert, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clientConf := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
			if tt.cert != nil {
				clientConf.Certificates = []tls.Certificate{*tt.cert}
			}
			client := tls.Client(dialFrom(t, "127.0.0.1", inner.Addr().String()), clientConf)
			clientDone := make(chan error, 1)
			go func() { clientDone <- client.Handshake() }()
			server := tls.Server(testwait.Recv(t, conns, waitTimeout, "the connection"), conf)
			defer server.Close()
			if err := server.Handshake(); err != nil {
				t.Fatalf("the server's handshake: %v", err)
			}
			if err := testwait.Recv(t, clientDone, waitTimeout, "the client's handshake"); err != nil {
				t.Fatalf("the client's handshake: %v", err)
			}
			if n := lim.Held(); n != tt.held {
				t.Fatalf("Held() = %d after the handshake, want %d", n, tt.held)
			}
			server.Close()
			if n := lim.Held(); n != 0 {
				t.Fatalf("Held() = %d after closing", n)
			}
		})
	}

	// Off a Listener the handshake goes on under the config itself.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	clientDone := make(chan error, 1)
	go func() { clientDone <- tls.Client(a, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}).Handshake() }()
	if err := tls.Server(b, conf).Handshake(); err != nil {
		t.Fatalf("a handshake off a Listener: %v", err)
	}
	if err := testwait.Recv(t, clientDone, waitTimeout, "the client's handshake"); err != nil {
		t.Fatal(err)
	}
}
