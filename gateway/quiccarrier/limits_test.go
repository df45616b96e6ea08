package quiccarrier_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/internal/connlimit"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testwait"
)

// stalledClient is a client whose handshake stops when the gateway asks
// for its certificate, until released: a handshake in progress, for as
// long as the test wants one.
type stalledClient struct {
	asked   chan struct{}
	release chan struct{}
	// done is closed when the handshake has ended, with err.
	done chan struct{}
	err  error
}

// dialStalled starts a handshake from the loopback address from, with d's
// certificate once released.
func (f *fixture) dialStalled(t *testing.T, from string, d *testpki.Device) *stalledClient {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	c := &stalledClient{asked: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{quiccarrier.ALPN},
		InsecureSkipVerify: true, // a test client: the server is ours
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			once.Do(func() { close(c.asked) })
			select {
			case <-c.release:
				return d.Cert, nil
			case <-t.Context().Done():
				return nil, t.Context().Err()
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	go func() {
		conn, err := tr.Dial(ctx, udpAddr(t, f.addr), conf, &quic.Config{HandshakeIdleTimeout: time.Minute})
		if err == nil {
			_ = conn.CloseWithError(0, "")
		}
		c.err = err
		close(c.done)
	}()
	t.Cleanup(func() {
		c.releaseOnce()
		testwait.Recv(t, c.done, waitTimeout, "a stalled client's end")
		cancel()
		tr.Close()
		pc.Close()
	})
	return c
}

// result waits for the handshake's end and returns its error.
func (c *stalledClient) result(t *testing.T, what string) error {
	t.Helper()
	testwait.Recv(t, c.done, waitTimeout, what)
	return c.err
}

func (c *stalledClient) releaseOnce() {
	select {
	case <-c.release:
	default:
		close(c.release)
	}
}

func udpAddr(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// refusedHandshake checks that c's handshake ended in CONNECTION_REFUSED
// from the gateway, before the gateway asked for its certificate.
func refusedHandshake(t *testing.T, c *stalledClient, what string) {
	t.Helper()
	err := c.result(t, what)
	var te *quic.TransportError
	if !errors.As(err, &te) || te.ErrorCode != quic.ConnectionRefused || !te.Remote {
		t.Fatalf("%s: %v, want CONNECTION_REFUSED from the gateway", what, err)
	}
	select {
	case <-c.asked:
		t.Fatalf("%s: the gateway asked for a certificate", what)
	default:
	}
}

// waitHandshakes waits, bounded, until the gateway has n handshakes in
// progress.
func waitHandshakes(t *testing.T, srv *quiccarrier.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for srv.HandshakesInProgress() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes in progress after %v, want %d", srv.HandshakesInProgress(), waitTimeout, n)
		}
		<-tick.C
	}
}

// TestHandshakeLimits: from RetryThreshold handshakes in progress on, new
// ones go through a Retry; a source that proved its address is held to its
// share, and all sources to MaxHandshakes; refusals cost the gateway
// nothing and every slot comes back when its handshake ends.
func TestHandshakeLimits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var refused []connlimit.Reason
	var retries atomic.Int64
	f := newLimitedFixture(t, time.Minute, quiccarrier.Limits{
		MaxHandshakes:          5,
		MaxHandshakesPerSource: 2,
		RetryThreshold:         2,
		HandshakeTimeout:       time.Minute, // the stalled clients send nothing
		Refused: func(r connlimit.Reason) {
			mu.Lock()
			defer mu.Unlock()
			refused = append(refused, r)
		},
		Retried: func() { retries.Add(1) },
	})
	d := testpki.NewDevice(t, f.CA)
	var held []*stalledClient
	hold := func(from, what string) {
		t.Helper()
		c := f.dialStalled(t, from, d)
		testwait.Recv(t, c.asked, waitTimeout, what+" to be asked for its certificate")
		held = append(held, c)
	}

	// Below the threshold: no Retry, and (the address unproved) no
	// per-source count.
	hold("127.0.0.1", "the first handshake")
	hold("127.0.0.1", "the second handshake")
	if n := retries.Load(); n != 0 {
		t.Fatalf("%d Retries below the threshold", n)
	}
	// From the threshold on, each goes through a Retry first.
	hold("127.0.0.1", "the third handshake")
	if n := retries.Load(); n < 1 {
		t.Fatal("no Retry at the threshold")
	}
	hold("127.0.0.1", "the fourth handshake")
	refusedHandshake(t, f.dialStalled(t, "127.0.0.1", d), "a third proved handshake from 127.0.0.1")
	hold("127.0.0.2", "a handshake from 127.0.0.2")
	waitHandshakes(t, f.srv, 5)
	refusedHandshake(t, f.dialStalled(t, "127.0.0.2", d), "a sixth handshake")
	if n := retries.Load(); n < 5 {
		t.Fatalf("%d Retries for five handshakes past the threshold", n)
	}
	// Each Initial packet of a refused client is refused (a ClientHello
	// with a post-quantum key share takes two).
	mu.Lock()
	if got := slices.Compact(slices.Clone(refused)); !slices.Equal(got, []connlimit.Reason{connlimit.PerSource, connlimit.Total}) {
		t.Errorf("refusals heard: %v, want per_source then total", refused)
	}
	mu.Unlock()

	// Handshakes that complete give their slots back.
	for _, c := range held {
		c.releaseOnce()
		if err := c.result(t, "a released handshake"); err != nil {
			t.Fatalf("a released handshake: %v", err)
		}
	}
	waitHandshakes(t, f.srv, 0)
	_, str := f.rawClient(t, d)
	register(t, str)
}

// TestAbandonedHandshakeGivesBackItsSlot: a client that goes silent in the
// middle of its handshake holds its slot only until the handshake timeout.
func TestAbandonedHandshakeGivesBackItsSlot(t *testing.T) {
	t.Parallel()
	f := newLimitedFixture(t, time.Minute, quiccarrier.Limits{MaxHandshakes: 1, HandshakeTimeout: 200 * time.Millisecond})
	d := testpki.NewDevice(t, f.CA)
	silent := f.dialStalled(t, "127.0.0.1", d)
	testwait.Recv(t, silent.asked, waitTimeout, "the silent client to be asked for its certificate")
	refusedHandshake(t, f.dialStalled(t, "127.0.0.1", d), "a handshake beside the silent one")
	waitHandshakes(t, f.srv, 0)
	_, str := f.rawClient(t, d)
	register(t, str)
}
