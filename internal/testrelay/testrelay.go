// Package testrelay puts latency between a node and a gateway in tests.
// This machine has no tc netem, so a relay the test owns stands in for a
// slow path: it listens on one port for both UDP (QUIC) and TCP (gRPC) and
// forwards each packet or chunk to the gateway after a fixed delay, each
// way. Loss stays the kernel's job (testnetns.DropShare); the relay only
// delays, keeping order, as a long link does.
package testrelay

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// queueDepth bounds what one direction holds in flight: past it the
// reader waits, as a full link buffer makes a sender wait.
const queueDepth = 4096

// Start relays UDP and TCP from a port of its own on 127.0.0.1 to target
// (a HOST:PORT serving both), delaying every datagram and every chunk of
// a stream by delay in each direction, until the test ends. It returns
// the relay's address.
func Start(tb testing.TB, target string, delay time.Duration) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	tcp, udp := ListenPair(tb)
	context.AfterFunc(ctx, func() { tcp.Close(); udp.Close() })
	wg.Go(func() { relayTCP(ctx, &wg, tcp, target, delay) })
	wg.Go(func() { relayUDP(ctx, &wg, udp, target, delay) })
	return tcp.Addr().String()
}

// ListenPair opens a TCP listener and a UDP socket on the same free port
// of 127.0.0.1, trying a few ports in case another test takes the UDP one
// first. A gateway handed both can be started behind a relay that knows
// its address.
func ListenPair(tb testing.TB) (net.Listener, net.PacketConn) {
	tb.Helper()
	var lastErr error
	for range 20 {
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("relay: listening on TCP: %v", err)
		}
		port := tcp.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return tcp, udp
		}
		tcp.Close()
		lastErr = err
	}
	tb.Fatalf("relay: no port free for both TCP and UDP: %v", lastErr)
	return nil, nil
}

// chunk is data due to be written at a time.
type chunk struct {
	data []byte
	due  time.Time
}

// delayLine writes what it is given to write, each chunk delay after it
// was given, in order, until ctx ends or a write fails.
type delayLine struct {
	ctx   context.Context
	queue chan chunk
	delay time.Duration
}

func newDelayLine(ctx context.Context, wg *sync.WaitGroup, delay time.Duration, write func([]byte) error) *delayLine {
	d := &delayLine{ctx: ctx, queue: make(chan chunk, queueDepth), delay: delay}
	wg.Go(func() {
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			var c chunk
			select {
			case <-ctx.Done():
				return
			case c = <-d.queue:
			}
			timer.Reset(time.Until(c.due))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			if write(c.data) != nil {
				return
			}
		}
	})
	return d
}

// send queues a copy of b; false once the line has stopped.
func (d *delayLine) send(b []byte) bool {
	select {
	case d.queue <- chunk{data: append([]byte(nil), b...), due: time.Now().Add(d.delay)}:
		return true
	case <-d.ctx.Done():
		return false
	}
}

func relayTCP(ctx context.Context, wg *sync.WaitGroup, ln net.Listener, target string, delay time.Duration) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer client.Close()
			var dialer net.Dialer
			upstream, err := dialer.DialContext(ctx, "tcp", target)
			if err != nil {
				return
			}
			defer upstream.Close()
			connCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			context.AfterFunc(connCtx, func() { client.Close(); upstream.Close() })
			// The connection ends when both directions have delivered
			// their end of stream, or at once when either fails.
			var pair sync.WaitGroup
			open := atomic.Int32{}
			open.Store(2)
			pipe := func(dst, src net.Conn) {
				line := newDelayLine(connCtx, &pair, delay, func(b []byte) error {
					if b == nil { // src's end of stream, after all it sent
						err := dst.(*net.TCPConn).CloseWrite()
						if open.Add(-1) == 0 || err != nil {
							cancel()
						}
						return err
					}
					if _, err := dst.Write(b); err != nil {
						cancel()
						return err
					}
					return nil
				})
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 && !line.send(buf[:n]) {
						return
					}
					if errors.Is(err, io.EOF) {
						line.send(nil)
						return
					}
					if err != nil {
						cancel()
						return
					}
				}
			}
			pair.Go(func() { pipe(upstream, client) })
			pair.Go(func() { pipe(client, upstream) })
			pair.Wait()
		})
	}
}

// relayUDP gives each client address an upstream socket of its own, so
// the gateway sees one peer per client, as it would without the relay.
func relayUDP(ctx context.Context, wg *sync.WaitGroup, conn net.PacketConn, target string, delay time.Duration) {
	upstreamAddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return
	}
	type peer struct{ toGateway *delayLine }
	peers := map[string]*peer{}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		p := peers[from.String()]
		if p == nil {
			upstream, err := net.DialUDP("udp", nil, upstreamAddr)
			if err != nil {
				continue
			}
			context.AfterFunc(ctx, func() { upstream.Close() })
			p = &peer{toGateway: newDelayLine(ctx, wg, delay, func(b []byte) error {
				_, err := upstream.Write(b)
				return ignoreRefused(err)
			})}
			peers[from.String()] = p
			toClient := newDelayLine(ctx, wg, delay, func(b []byte) error {
				_, err := conn.WriteTo(b, from)
				return err
			})
			wg.Go(func() {
				b := make([]byte, 64<<10)
				for {
					n, err := upstream.Read(b)
					if ignoreRefused(err) != nil {
						return
					}
					if n > 0 && !toClient.send(b[:n]) {
						return
					}
				}
			})
		}
		p.toGateway.send(buf[:n])
	}
}

// ignoreRefused: a connected UDP socket reports an earlier datagram's ICMP
// "port unreachable" on its next call (the gateway restarting, say); the
// path is not gone for that.
func ignoreRefused(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	return err
}
