// Package quicecho is a bare quic-go echo server and client over mutual
// TLS on loopback: the floor the node protocol's benchmarks are measured
// against, in the same run. It has no framing, no protocol and no
// authentication beyond what TLS does.
package quicecho

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/quic-go/quic-go"
)

// Server echoes every stream back until the client closes its side.
type Server struct {
	pc   net.PacketConn
	tr   *quic.Transport
	ln   *quic.Listener
	done chan struct{}

	mu sync.Mutex
	// conns are the accepted connections, closed with the server;
	// guarded by mu.
	conns map[*quic.Conn]struct{}
}

// Listen starts a server on 127.0.0.1 with cert, requiring any client
// certificate.
func Listen(cert tls.Certificate, alpn string) (*Server, error) {
	return ListenAddr("127.0.0.1:0", cert, alpn)
}

// ListenAddr is Listen on addr (a loopback HOST:PORT), so that a server
// can be restarted where the previous one was.
func ListenAddr(addr string, cert tls.Certificate, alpn string) (*Server, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{alpn},
		ClientAuth:   tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{cert},
	}, &quic.Config{MaxIncomingStreams: 1 << 16})
	if err != nil {
		_ = tr.Close()
		_ = pc.Close()
		return nil, err
	}
	s := &Server{pc: pc, tr: tr, ln: ln, done: make(chan struct{}), conns: map[*quic.Conn]struct{}{}}
	go s.serve()
	return s, nil
}

// Addr is the server's address.
func (s *Server) Addr() string { return s.pc.LocalAddr().String() }

func (s *Server) serve() {
	defer close(s.done)
	for {
		conn, err := s.ln.Accept(context.Background())
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
			}()
			for {
				str, err := conn.AcceptStream(context.Background())
				if err != nil {
					return
				}
				go func() {
					buf := make([]byte, 2048)
					_, _ = io.CopyBuffer(str, str, buf)
					_ = str.Close()
				}()
			}
		}()
	}
}

// Conns is how many connections the server holds.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops the server, closing its connections (so clients hear of
// it at once, as from a gateway that shuts down).
func (s *Server) Close() error {
	err := s.ln.Close()
	<-s.done
	s.mu.Lock()
	for conn := range s.conns {
		_ = conn.CloseWithError(0, "server closing")
	}
	s.mu.Unlock()
	_ = s.tr.Close()
	_ = s.pc.Close()
	return err
}

// Client is a connection to a Server.
type Client struct {
	conn *quic.Conn
}

// Dial connects with the client certificate cert. The server is not
// verified: it is the caller's own, on loopback.
func Dial(ctx context.Context, addr string, cert tls.Certificate, alpn string) (*Client, error) {
	conn, err := quic.DialAddr(ctx, addr, clientTLS(cert, alpn), &quic.Config{})
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn}, nil
}

// clientTLS presents cert and does not verify the server: it is the
// caller's own, on loopback.
func clientTLS(cert tls.Certificate, alpn string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{alpn},
		InsecureSkipVerify: true,
		Certificates:       []tls.Certificate{cert},
	}
}

// DialTransport is Dial on tr, a socket shared with other clients, with
// conf (nil: quic-go's defaults).
func DialTransport(ctx context.Context, tr *quic.Transport, addr string, cert tls.Certificate, alpn string, conf *quic.Config) (*Client, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := tr.Dial(ctx, udpAddr, clientTLS(cert, alpn), conf)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn}, nil
}

// Done is closed when the connection ends.
func (c *Client) Done() <-chan struct{} { return c.conn.Context().Done() }

// Stream opens a stream, for echoes on one stream.
func (c *Client) Stream(ctx context.Context) (*quic.Stream, error) {
	return c.conn.OpenStreamSync(ctx)
}

// RoundTripNewStream opens a stream, sends msg, closes its side and reads
// the echo into buf (len(msg) bytes): the shape of one invocation.
func (c *Client) RoundTripNewStream(ctx context.Context, msg, buf []byte) error {
	str, err := c.conn.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	if _, err := str.Write(msg); err != nil {
		return err
	}
	_ = str.Close()
	if _, err := io.ReadFull(str, buf[:len(msg)]); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	return nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.CloseWithError(0, "") }
