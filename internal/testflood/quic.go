package testflood

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/internal/wire"
)

// floodQUIC starts spec.Count handshakes from one UDP socket, calls opened
// once each has sent its first datagram, and keeps them (quic-go
// retransmitting their Initials) until spec.Hold runs out. It offers X25519
// alone, so that each ClientHello fits one Initial packet.
func floodQUIC(spec Spec, opened func()) (Report, error) {
	src := net.ParseIP(spec.Source)
	if src == nil {
		return Report{}, fmt.Errorf("source %q is not an IP address", spec.Source)
	}
	target, err := net.ResolveUDPAddr("udp", spec.Target)
	if err != nil {
		return Report{}, err
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: src})
	if err != nil {
		return Report{}, err
	}
	defer pc.Close()
	deaf := &deafConn{PacketConn: pc, want: int64(spec.Count), sentAll: make(chan struct{})}
	tr := &quic.Transport{Conn: deaf}
	defer tr.Close()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), spec.Hold)
	defer cancel()
	tlsConf := &tls.Config{
		InsecureSkipVerify: true, // an attacker does not check
		NextProtos:         []string{wire.ALPN},
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
	}
	qconf := &quic.Config{HandshakeIdleTimeout: spec.Hold}
	var wg sync.WaitGroup
	for range spec.Count {
		wg.Go(func() {
			if conn, err := tr.Dial(ctx, target, tlsConf, qconf); err == nil {
				_ = conn.CloseWithError(0, "")
			}
		})
	}
	var took time.Duration
	select {
	case <-deaf.sentAll:
		took = time.Since(start)
		opened()
	case <-ctx.Done():
	}
	wg.Wait()
	return Report{Opened: spec.Count, Took: took}, nil
}

// deafConn sends what quic-go sends and drops everything that comes back.
// (It embeds the net.PacketConn interface, not the *net.UDPConn, so that
// quic-go sees none of the UDP socket's own read methods.)
type deafConn struct {
	net.PacketConn
	sent    atomic.Int64
	want    int64
	sentAll chan struct{}
}

func (d *deafConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if d.sent.Add(1) == d.want {
		close(d.sentAll)
	}
	return d.PacketConn.WriteTo(b, addr)
}

// ReadFrom reads and drops until the socket is closed or its deadline
// passes.
func (d *deafConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if _, _, err := d.PacketConn.ReadFrom(b); err != nil {
			return 0, nil, err
		}
	}
}
