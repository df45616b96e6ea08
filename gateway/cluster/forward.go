package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/callcode"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
	peerv1 "github.com/palyra/palyra-go/proto/peer/v1"
)

// Stream error codes of the peer protocol.
const (
	// codeCancelled: the caller gave up on the call.
	codeCancelled quic.StreamErrorCode = 1
	// codeDone: the stream's call is over.
	codeDone quic.StreamErrorCode = 0
)

// redialAfter is how long a failed dial to a peer is answered from
// memory, so that calls to a holder that died fail at once rather than
// each waiting dialTimeout.
const redialAfter = time.Second

// peerConn is this gateway's connection to another one, shared by every
// call forwarded there. ready is closed once the dial ended, with conn or
// err set.
type peerConn struct {
	addr     string
	ready    chan struct{}
	conn     *quic.Conn
	err      error
	failedAt time.Time
}

func (p *peerConn) live() bool {
	return isClosed(p.ready) && p.conn != nil && p.conn.Context().Err() == nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *Cluster) connected(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[id]
	return p != nil && p.live()
}

// Forward runs inv on device id through the gateway that holds it, if
// another live gateway does: handled is false when none does (the caller
// answers "offline" or queues the call). ctx bounds the call; timeout is
// what the holder is told. A call the holder refuses because its route was
// stale is routed again once, with the route read anew; a call that may
// have reached the node is never sent twice.
func (c *Cluster) Forward(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, timeout time.Duration) (res *nodev1.Result, handled bool) {
	r, ok := c.cachedRoute(id)
	if !ok {
		if r, ok = c.route(ctx, id); !ok {
			return nil, false
		}
	}
	defer func() {
		if c.cfg.Forwarded != nil {
			outcome := "ok"
			if !res.GetOk() {
				outcome = res.GetErrorCode()
			}
			c.cfg.Forwarded(outcome)
		}
	}()
	res, refusal := c.call(ctx, r, id, inv, timeout)
	if refusal == nil {
		return res, true
	}
	c.log.Info("a forwarded call was not delivered; reading the route again", "device", id, "gateway", r.GatewayID, "epoch", r.Epoch, "why", refusal.GetMessage())
	c.forgetRoute(id)
	again, ok := c.route(ctx, id)
	if !ok || again == r {
		return failure(callcode.Offline, "node %s is offline", id), true
	}
	if res, refusal = c.call(ctx, again, id, inv, timeout); refusal != nil {
		c.forgetRoute(id)
		return failure(callcode.Offline, "node %s is offline", id), true
	}
	return res, true
}

// cachedRoute returns the route last read for device id, if it is younger
// than a lease. A cached route needs no check beyond the holder's own: a
// stale one is refused (its epoch is not the session's, or the holder is
// gone), and the route is read anew.
func (c *Cluster) cachedRoute(id identity.DeviceID) (store.Route, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cache[id]
	if !ok || c.cfg.Now().Sub(e.at) >= c.cfg.LeaseTTL {
		return store.Route{}, false
	}
	return e.r, true
}

func (c *Cluster) forgetRoute(id identity.DeviceID) {
	c.mu.Lock()
	delete(c.cache, id)
	c.mu.Unlock()
}

// route returns the route of device id through another live gateway.
func (c *Cluster) route(ctx context.Context, id identity.DeviceID) (store.Route, bool) {
	r, err := c.cfg.Store.LookupRoute(ctx, id, c.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Route{}, false
	case err != nil:
		c.log.Error("reading a node's route", "device", id, "err", err)
		return store.Route{}, false
	case r.GatewayID == c.cfg.ID:
		// This gateway's route of a session that is not attached here any
		// more (its removal is on its way).
		return store.Route{}, false
	}
	c.mu.Lock()
	c.cache[id] = cachedRoute{r: r, at: c.cfg.Now()}
	c.mu.Unlock()
	return r, true
}

type cachedRoute struct {
	r  store.Route
	at time.Time
}

func failure(code, format string, args ...any) *nodev1.Result {
	return &nodev1.Result{ErrorCode: code, ErrorMessage: fmt.Sprintf(format, args...)}
}

// call sends one call to r's gateway and waits for its answer: a result,
// or a refusal (nothing reached the node).
func (c *Cluster) call(ctx context.Context, r store.Route, id identity.DeviceID, inv *nodev1.Invoke, timeout time.Duration) (*nodev1.Result, *peerv1.Refusal) {
	conn, err := c.dial(ctx, r)
	if err != nil {
		if ctx.Err() != nil {
			return failure(callcode.Timeout, "the call was cancelled"), nil
		}
		c.log.Warn("cannot reach the gateway that holds a node", "device", id, "gateway", r.GatewayID, "address", r.PeerAddress, "err", err)
		// Nothing was sent: the node may be elsewhere by now.
		return nil, &peerv1.Refusal{Message: fmt.Sprintf("gateway %s, which holds it, does not answer", r.GatewayID)}
	}
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return failure(callcode.Timeout, "the call was cancelled"), nil
		}
		return nil, &peerv1.Refusal{Message: fmt.Sprintf("gateway %s, which holds it, went away", r.GatewayID)}
	}
	stop := context.AfterFunc(ctx, func() {
		str.CancelWrite(codeCancelled)
		str.CancelRead(codeCancelled)
	})
	defer func() {
		if stop() {
			str.CancelWrite(codeDone)
			str.CancelRead(codeDone)
		}
	}()
	call := &peerv1.Call{DeviceId: id.String(), Epoch: r.Epoch, Invoke: inv, TimeoutMs: timeout.Milliseconds()}
	if err := wire.WriteFrame(str, call); err != nil {
		return c.lost(ctx, r, err), nil
	}
	var reply peerv1.Reply
	for {
		if err := wire.ReadFrame(str, &reply); err != nil {
			return c.lost(ctx, r, err), nil
		}
		switch body := reply.Body.(type) {
		case *peerv1.Reply_Progress:
			// Progress is not shown to direct callers (the dispatcher's
			// carriers drop it too); read on.
		case *peerv1.Reply_Result:
			if body.Result.GetRequestId() != inv.GetRequestId() {
				return failure(callcode.BadAnswer, "gateway %s answered for request %q", r.GatewayID, body.Result.GetRequestId()), nil
			}
			return body.Result, nil
		case *peerv1.Reply_Refusal:
			return nil, body.Refusal
		default:
			return failure(callcode.BadAnswer, "gateway %s answered with %T", r.GatewayID, reply.Body), nil
		}
	}
}

// lost explains a call whose stream failed after it may have been sent:
// it is not sent again, since the node may have run it.
func (c *Cluster) lost(ctx context.Context, r store.Route, err error) *nodev1.Result {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return failure(callcode.Timeout, "no result from the node within the call's time")
	}
	if ctx.Err() != nil {
		return failure(callcode.Timeout, "the call was cancelled")
	}
	c.log.Info("a forwarded call's stream failed", "gateway", r.GatewayID, "err", err)
	return failure(callcode.NodeGone, "gateway %s, which holds the node, went away during the call", r.GatewayID)
}

// dial returns the connection to r's gateway, dialing it if there is none
// (one dial at a time per gateway; the others wait for it).
func (c *Cluster) dial(ctx context.Context, r store.Route) (*quic.Conn, error) {
	c.mu.Lock()
	p := c.peers[r.GatewayID]
	if p != nil && isClosed(p.ready) {
		switch {
		case p.addr != r.PeerAddress:
		case p.conn != nil && p.conn.Context().Err() == nil:
			c.mu.Unlock()
			return p.conn, nil
		case p.err != nil && c.cfg.Now().Sub(p.failedAt) < redialAfter:
			c.mu.Unlock()
			return nil, p.err
		}
		if p.conn != nil {
			_ = p.conn.CloseWithError(0, "")
		}
		p = nil
	}
	// A dial in progress is waited for, whatever its address.
	if p == nil {
		p = &peerConn{addr: r.PeerAddress, ready: make(chan struct{})}
		c.peers[r.GatewayID] = p
		go c.connect(p, r.GatewayID)
	}
	c.mu.Unlock()
	select {
	case <-p.ready:
		return p.conn, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// connect dials p's gateway, which must prove it is gateway id.
func (c *Cluster) connect(p *peerConn, id string) {
	defer close(p.ready)
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	addr, err := net.ResolveUDPAddr("udp", p.addr)
	if err != nil {
		p.err, p.failedAt = fmt.Errorf("the address %q of gateway %s: %w", p.addr, id, err), c.cfg.Now()
		return
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.certificate()
		},
		// The peer is checked as the gateway its route names, below,
		// rather than by host name.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			got, err := identity.VerifyGatewayCertificate(c.cfg.CA.Certificate(), rawCerts, c.cfg.Now())
			if err != nil {
				return err
			}
			if got != id {
				return fmt.Errorf("the gateway at %s is %q, not %q", p.addr, got, id)
			}
			return nil
		},
	}
	conn, err := c.transport.Dial(ctx, addr, tlsConf, &quic.Config{
		HandshakeIdleTimeout: dialTimeout,
		MaxIdleTimeout:       30 * time.Second,
		KeepAlivePeriod:      10 * time.Second,
		MaxIncomingStreams:   -1,
	})
	if err != nil {
		p.err, p.failedAt = fmt.Errorf("connecting to gateway %s at %s: %w", id, p.addr, err), c.cfg.Now()
		return
	}
	p.conn = conn
	c.log.Info("connected to a peer gateway", "gateway", id, "address", p.addr)
}

func (c *Cluster) closePeers() {
	c.mu.Lock()
	peers := c.peers
	c.peers = make(map[string]*peerConn)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			<-p.ready
			if p.conn != nil {
				_ = p.conn.CloseWithError(0, "gateway shutting down")
			}
		})
	}
	wg.Wait()
}
