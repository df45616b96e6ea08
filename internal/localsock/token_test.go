package localsock

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/testwine"
)

// These tests run on Linux and, built for Windows, under Wine, where the
// token endpoint is what Listen serves (localsock_wine_test.go).

// acceptEcho accepts connections on ln and answers each line with
// "echo: " and the line, until ln closes; the channel gets each
// connection accepted.
func acceptEcho(t *testing.T, ln net.Listener) <-chan net.Conn {
	t.Helper()
	accepted := make(chan net.Conn, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo: "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return accepted
}

func roundTrip(t *testing.T, c net.Conn, line string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "echo: "+line+"\n" {
		t.Fatalf("answer %q, %v; want the echo of %q", got, err, line)
	}
}

// The endpoint file names a loopback port and a token; a client that reads
// it reaches the server, a second server is refused while the first runs,
// and closing removes the file.
func TestTokenEndpoint(t *testing.T) {
	path := filepath.Join(testwine.TempDir(t), "sub", "admin.endpoint")
	ln, err := listenToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != path {
		t.Errorf("Addr() = %s, want the endpoint file %s", ln.Addr(), path)
	}
	accepted := acceptEcho(t, ln)
	e, err := readEndpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if e.addr.Addr().String() != "127.0.0.1" {
		t.Errorf("endpoint address %s, want 127.0.0.1", e.addr)
	}

	c, err := dialToken(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Recv(t, accepted, 10*time.Second, "the connection with the token")
	roundTrip(t, c, "hello")
	c.Close()
	if err := checkToken(path); err != nil {
		t.Errorf("checkToken on a served endpoint: %v", err)
	}

	if _, err := listenToken(path); err == nil || !strings.Contains(err.Error(), "another process is already serving") {
		t.Fatalf("second listenToken on a served endpoint: %v", err)
	}
	if e2, err := readEndpoint(path); err != nil || e2 != e {
		t.Fatalf("the refused second listener changed the endpoint file: %v", err)
	}

	ln.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the endpoint file is still there after Close: %v", err)
	}
	if err := checkToken(path); !errors.Is(err, ErrNoSocket) {
		t.Errorf("checkToken after Close = %v, want ErrNoSocket", err)
	}
}

// A client with another token, or none, is refused with the reason and
// never reaches the server; the refusal names neither token.
func TestTokenRefused(t *testing.T) {
	dir := testwine.TempDir(t)
	path := filepath.Join(dir, "node.endpoint")
	ln, err := listenToken(path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptEcho(t, ln)
	good, err := readEndpoint(path)
	if err != nil {
		t.Fatal(err)
	}

	// A file naming the same port with another token: what a client
	// holding a stale or forged file has.
	forged := good
	forged.token[0] ^= 1
	forgedPath := filepath.Join(dir, "forged.endpoint")
	if err := writePrivate(forgedPath, forged.marshal()); err != nil {
		t.Fatal(err)
	}
	_, err = dialToken(t.Context(), forgedPath)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "wrong token") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("dial with a wrong token = %v, want ErrRefused saying why", err)
	}
	if err := checkToken(forgedPath); !errors.Is(err, ErrRefused) {
		t.Errorf("checkToken with a wrong token = %v, want ErrRefused", err)
	}
	for _, tok := range [][]byte{good.token[:], forged.token[:]} {
		if s := base64.RawURLEncoding.EncodeToString(tok); strings.Contains(err.Error(), s) {
			t.Errorf("the error quotes a token: %v", err)
		}
	}

	// Raw clients: no handshake, a short token, another protocol.
	for _, tc := range []struct {
		name, send, reason string
	}{
		{"nothing", "", "no token"},
		{"half a token", "PLA1" + string(good.token[:10]), "no token"},
		{"HTTP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n....................", "did not start with its handshake"},
		{"the magic with zeros", "PLA1" + strings.Repeat("\x00", tokenSize), "wrong token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", good.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			// End of input: the server need not wait out its timeout.
			_ = c.(*net.TCPConn).CloseWrite()
			reply, _ := io.ReadAll(c)
			if !strings.HasPrefix(string(reply), "refused: ") || !strings.Contains(string(reply), tc.reason) {
				t.Errorf("server's answer %q, want a refusal saying %q", reply, tc.reason)
			}
		})
	}
	testwait.None(t, accepted, "a connection without the token")

	// The right token still works.
	c, err := dialToken(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testwait.Recv(t, accepted, 10*time.Second, "the connection with the token")
	roundTrip(t, c, "still served")
}

// A client that connects and says nothing holds up no other client, and
// Close ends its check.
func TestTokenSilentClient(t *testing.T) {
	path := filepath.Join(testwine.TempDir(t), "admin.endpoint")
	ln, err := listenToken(path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptEcho(t, ln)
	e, err := readEndpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", e.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := dialToken(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testwait.Recv(t, accepted, 10*time.Second, "the client behind a silent one")
	roundTrip(t, c, "not held up")

	ln.Close()
	_ = silent.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(silent); err != nil {
		t.Errorf("the silent connection was not closed with the listener: %v", err)
	}
}

// An endpoint file left by a process that is gone: clients hear that
// nothing serves it, and a new server replaces it.
func TestTokenStaleFile(t *testing.T) {
	dir := testwine.TempDir(t)
	path := filepath.Join(dir, "node.endpoint")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stale := endpoint{addr: closed.Addr().(*net.TCPAddr).AddrPort()}
	closed.Close()
	if err := writePrivate(path, stale.marshal()); err != nil {
		t.Fatal(err)
	}
	if err := checkToken(path); !errors.Is(err, ErrNotServed) || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("checkToken on a stale file = %v, want ErrNotServed", err)
	}
	ln, err := listenToken(path)
	if err != nil {
		t.Fatalf("replacing a stale endpoint file: %v", err)
	}
	defer ln.Close()
	if e, err := readEndpoint(path); err != nil || e == stale {
		t.Fatalf("the stale file was not replaced: %v", err)
	}

	// A file that is not an endpoint file is refused in words.
	bad := filepath.Join(dir, "bad.endpoint")
	if err := os.WriteFile(bad, []byte("127.0.0.1:80\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkToken(bad); err == nil || !strings.Contains(err.Error(), "not a Palyra endpoint file") {
		t.Errorf("checkToken on a bad file = %v", err)
	}
}

func TestParseEndpoint(t *testing.T) {
	tok := base64.RawURLEncoding.EncodeToString(make([]byte, tokenSize))
	for _, tc := range []struct {
		name, content, err string
	}{
		{"good", fileHeader + "\n127.0.0.1:5000\n" + tok + "\n", ""},
		{"good, CRLF", fileHeader + "\r\n127.0.0.1:5000\r\n" + tok + "\r\n", ""},
		{"good, IPv6", fileHeader + "\n[::1]:5000\n" + tok, ""},
		{"empty", "", "not a Palyra endpoint file"},
		{"other header", "palyra-local-api 2\n127.0.0.1:5000\n" + tok + "\n", "not a Palyra endpoint file"},
		{"extra line", fileHeader + "\n127.0.0.1:5000\n" + tok + "\nmore\n", "not a Palyra endpoint file"},
		{"host name", fileHeader + "\nlocalhost:5000\n" + tok + "\n", "not an IP address and port"},
		{"not loopback", fileHeader + "\n192.0.2.1:5000\n" + tok + "\n", "not a loopback address"},
		{"port 0", fileHeader + "\n127.0.0.1:0\n" + tok + "\n", "not a loopback address with a port"},
		{"short token", fileHeader + "\n127.0.0.1:5000\n" + tok[:20] + "\n", "token is not 32 bytes"},
		{"token not base64", fileHeader + "\n127.0.0.1:5000\n" + strings.Repeat("!", 43) + "\n", "token is not 32 bytes"},
		{"too long", strings.Repeat("x", maxFileSize+1), "more than an endpoint file's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseEndpoint([]byte(tc.content))
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("parseEndpoint: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("parseEndpoint = %v, want an error saying %q", err, tc.err)
			case err != nil && strings.Contains(err.Error(), tok[:20]):
				t.Errorf("the error quotes the token line: %v", err)
			}
		})
	}
}

func FuzzParseEndpoint(f *testing.F) {
	tok := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	f.Add([]byte(fileHeader + "\n127.0.0.1:5000\n" + tok + "\n"))
	f.Add([]byte(fileHeader + "\r\n[::1]:65535\r\n" + tok))
	f.Add([]byte(fileHeader + "\n127.0.0.1:0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEndpoint(b)
		if err != nil {
			return
		}
		if !e.addr.Addr().IsLoopback() || e.addr.Port() == 0 {
			t.Fatalf("accepted %s", e.addr)
		}
		again, err := parseEndpoint(e.marshal())
		if err != nil || again != e {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, e)
		}
	})
}
