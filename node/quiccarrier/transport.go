package quiccarrier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/node/carrier"
)

// Transport is one UDP socket that the QUIC sessions of many nodes in one
// process share: quic-go tells their packets apart by connection ID. An
// embedder running many agents (a benchmark, a simulator) would otherwise
// hold a socket, and a file, per session. Sessions dialed on it end when it
// is closed; closing one session leaves the others be.
type Transport struct {
	pc net.PacketConn
	tr *quic.Transport
}

// NewTransport opens the shared socket on addr (HOST:PORT, port 0 for any),
// which must be able to reach the gateways dialed on it: "127.0.0.1:0" for
// a gateway on IPv4 loopback, ":0" for any.
func NewTransport(addr string) (*Transport, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("opening the shared QUIC socket: %w", err)
	}
	return &Transport{pc: pc, tr: &quic.Transport{Conn: pc}}, nil
}

// LocalAddr is the address of the shared socket.
func (t *Transport) LocalAddr() net.Addr { return t.pc.LocalAddr() }

// Dial is Dial, on the shared socket.
func (t *Transport) Dial(ctx context.Context, cfg carrier.Config) (*Conn, error) {
	return carrier.DialEach(ctx, cfg, "QUIC", connect(t.open))
}

func (t *Transport) open(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return t.tr.Dial(ctx, udpAddr, tlsConf, conf)
}

// Close closes every session dialed on t, then the socket.
func (t *Transport) Close() error {
	return errors.Join(t.tr.Close(), t.pc.Close())
}
