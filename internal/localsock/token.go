package localsock

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The endpoint file: a header line, the loopback address, the token.
//
//	palyra-local-api 1
//	127.0.0.1:50123
//	<32 bytes, base64url without padding>
const (
	fileHeader = "palyra-local-api 1"
	tokenSize  = 32
	// maxFileSize bounds what is read of an endpoint file (a good one is
	// under 100 bytes).
	maxFileSize = 1024
)

// handshakeMagic opens each connection, followed by the token; the server
// answers "ok\n" or "refused: <reason>\n" and, when refused, closes.
var handshakeMagic = []byte("PLA1")

const (
	// handshakeTimeout bounds a client's handshake on either side.
	handshakeTimeout = 5 * time.Second
	// maxHandshakes bounds the connections being checked at once: a
	// local process that opens many and says nothing gets no more.
	maxHandshakes = 64
	// maxReply bounds the server's answer line.
	maxReply = 256
)

// endpoint is what an endpoint file says.
type endpoint struct {
	addr  netip.AddrPort
	token [tokenSize]byte
}

func (e endpoint) marshal() []byte {
	return fmt.Appendf(nil, "%s\n%s\n%s\n", fileHeader, e.addr, base64.RawURLEncoding.EncodeToString(e.token[:]))
}

// parseEndpoint reads an endpoint file's content. Its errors never quote
// the token line.
func parseEndpoint(b []byte) (endpoint, error) {
	var e endpoint
	if len(b) > maxFileSize {
		return e, fmt.Errorf("it is %d bytes long, more than an endpoint file's %d", len(b), maxFileSize)
	}
	lines := strings.Split(strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
	if len(lines) != 3 || lines[0] != fileHeader {
		return e, fmt.Errorf("it is not a Palyra endpoint file (three lines, the first %q)", fileHeader)
	}
	addr, err := netip.ParseAddrPort(lines[1])
	if err != nil {
		return e, fmt.Errorf("its address %q is not an IP address and port", lines[1])
	}
	if !addr.Addr().IsLoopback() || addr.Port() == 0 {
		return e, fmt.Errorf("its address %s is not a loopback address with a port; a local API serves only this machine", addr)
	}
	tok, err := base64.RawURLEncoding.DecodeString(lines[2])
	if err != nil || len(tok) != tokenSize {
		return e, fmt.Errorf("its token is not %d bytes of base64url", tokenSize)
	}
	e.addr = addr
	copy(e.token[:], tok)
	return e, nil
}

// readEndpoint reads and parses the endpoint file at path.
func readEndpoint(path string) (endpoint, error) {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return endpoint{}, fmt.Errorf("%w at %s: %w", ErrNoSocket, path, err)
	case errors.Is(err, os.ErrPermission):
		return endpoint{}, fmt.Errorf("%w: %s belongs to another user (run this as the user whose process serves it): %w", ErrPermission, path, err)
	case err != nil:
		return endpoint{}, fmt.Errorf("reading the endpoint file %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return endpoint{}, fmt.Errorf("reading the endpoint file %s: %w", path, err)
	}
	e, err := parseEndpoint(b)
	if err != nil {
		return endpoint{}, fmt.Errorf("reading the endpoint file %s: %w", path, err)
	}
	return e, nil
}

// listenToken listens on a new loopback TCP port and writes its endpoint
// file at path, with a new random token, readable by this user only; the
// listener hands out only the connections that presented the token. An
// endpoint file left by a crash is replaced; one whose process still
// answers is not, so two processes never fight over it. Closing the
// listener removes the file, unless another process has written it since.
func listenToken(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the endpoint file's directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	c, err := dialToken(ctx, path)
	cancel()
	if err == nil {
		c.Close()
		return nil, fmt.Errorf("another process is already serving %s", path)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on a loopback port for %s: %w", path, err)
	}
	l := &tokenListener{
		tcp: tcp, path: path,
		conns: make(chan net.Conn), done: make(chan struct{}), failed: make(chan struct{}),
		checking: make(map[net.Conn]struct{}),
	}
	e := endpoint{addr: tcp.Addr().(*net.TCPAddr).AddrPort()}
	if _, err := rand.Read(e.token[:]); err != nil {
		tcp.Close()
		return nil, fmt.Errorf("making the local API's token: %w", err)
	}
	l.token = e.token
	if err := writePrivate(path, e.marshal()); err != nil {
		tcp.Close()
		return nil, fmt.Errorf("writing the endpoint file %s: %w", path, err)
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// tokenListener is the loopback port of listenToken. Its accept loop
// checks each connection's token in a goroutine of its own, so a client
// that says nothing holds up no one else.
type tokenListener struct {
	tcp   net.Listener
	path  string
	token [tokenSize]byte

	conns  chan net.Conn // checked connections, for Accept
	done   chan struct{} // closed by Close
	failed chan struct{} // closed when the TCP listener fails
	err    error         // why it failed; set before failed is closed
	once   sync.Once
	wg     sync.WaitGroup // the accept loop and the checks

	// mu guards checking, the connections being checked (Close closes
	// them).
	mu       sync.Mutex
	checking map[net.Conn]struct{}
}

func (l *tokenListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			l.err = err
			close(l.failed)
			return
		}
		l.mu.Lock()
		busy := len(l.checking) >= maxHandshakes
		select {
		case <-l.done:
			busy = true
		default:
		}
		if !busy {
			l.checking[c] = struct{}{}
		}
		l.mu.Unlock()
		if busy {
			c.Close()
			continue
		}
		l.wg.Add(1)
		go l.admit(c)
	}
}

// admit hands c to Accept if it presents the token, and otherwise tells
// it why not and closes it.
func (l *tokenListener) admit(c net.Conn) {
	defer l.wg.Done()
	err := l.check(c)
	l.mu.Lock()
	delete(l.checking, c)
	l.mu.Unlock()
	if err != nil {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(c, "refused: %s\n", err)
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// check reads c's handshake and answers it.
func (l *tokenListener) check(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	var hello [4 + tokenSize]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		return fmt.Errorf("no token within %s", handshakeTimeout)
	}
	if !bytes.Equal(hello[:4], handshakeMagic) {
		return errors.New("this port is a Palyra local API, and the connection did not start with its handshake")
	}
	if subtle.ConstantTimeCompare(hello[4:], l.token[:]) != 1 {
		return errors.New("wrong token")
	}
	if _, err := io.WriteString(c, "ok\n"); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

func (l *tokenListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	case <-l.failed:
		return nil, l.err
	}
}

// Close stops listening, ends the checks in progress and removes the
// endpoint file if it is still this listener's.
func (l *tokenListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.tcp.Close()
		l.mu.Lock()
		for c := range l.checking {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
		if e, rerr := readEndpoint(l.path); rerr == nil && subtle.ConstantTimeCompare(e.token[:], l.token[:]) == 1 {
			if rmErr := os.Remove(l.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("removing the endpoint file: %w", rmErr))
			}
		}
	})
	return err
}

// Addr is the endpoint file's path, which clients are given, as a Unix
// socket's address is its path.
func (l *tokenListener) Addr() net.Addr { return endpointAddr(l.path) }

type endpointAddr string

func (a endpointAddr) Network() string { return "palyra-endpoint" }
func (a endpointAddr) String() string  { return string(a) }

// dialToken connects to the port the endpoint file at path names and
// presents its token.
func dialToken(ctx context.Context, path string) (net.Conn, error) {
	e, err := readEndpoint(path)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", e.addr.String())
	if err != nil {
		return nil, fmt.Errorf("%w at %s, which %s names: its process is not running (it may have stopped and left the file behind): %w", ErrNotServed, e.addr, path, err)
	}
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	reply, err := handshake(c, e.token)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w at %s, which %s names: no answer from a Palyra local API (%v)", ErrNotServed, e.addr, path, err)
	}
	if reply != "ok" {
		c.Close()
		if reason, ok := strings.CutPrefix(reply, "refused: "); ok {
			return nil, fmt.Errorf("%w: %s, which %s names, refused it (%s): the file is not from the process that serves that port now; restart that gateway or node",
				ErrRefused, e.addr, path, reason)
		}
		return nil, fmt.Errorf("%w at %s, which %s names: another program answers there", ErrNotServed, e.addr, path)
	}
	if !stop() {
		c.Close()
		return nil, ctx.Err()
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// handshake sends the token and reads the server's answer line, byte by
// byte so that nothing after it is taken from the protocol that follows.
func handshake(c net.Conn, token [tokenSize]byte) (string, error) {
	if _, err := c.Write(append(append([]byte(nil), handshakeMagic...), token[:]...)); err != nil {
		return "", err
	}
	var line []byte
	var b [1]byte
	for len(line) < maxReply {
		if _, err := c.Read(b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", errors.New("its answer is too long")
}

// checkToken connects to the endpoint once and says why it cannot be
// used, if it cannot.
func checkToken(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := dialToken(ctx, path)
	if err != nil {
		return err
	}
	return c.Close()
}
