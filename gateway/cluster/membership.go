package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// ALPN is the gateway-to-gateway protocol's.
const ALPN = "palyra-peer/1"

// Defaults.
const (
	// DefaultLeaseTTL is how long a gateway counts as alive after its
	// last renewal; its routes stop counting then, so it is about how long
	// its nodes look held by a gateway that died without a word (a node
	// itself notices within about 15 s and reconnects elsewhere).
	DefaultLeaseTTL = 15 * time.Second
	// pruneAfter is how long a dead gateway's row (and its routes) stay
	// for the listings before a live gateway deletes them.
	pruneAfter = time.Hour
	// dialTimeout bounds connecting to a peer: a holder that does not
	// answer makes the call fail fast as "offline" rather than wait for
	// its lease to lapse.
	dialTimeout = 2 * time.Second
	// maxStreams caps the calls in flight on one peer connection.
	maxStreams = 1000
)

// Store is what the cluster needs of the gateway's store.
type Store interface {
	JoinGateway(ctx context.Context, g store.GatewayLease) error
	RenewGateway(ctx context.Context, id string, until time.Time) error
	LeaveGateway(ctx context.Context, id string) error
	PruneGateways(ctx context.Context, before time.Time) (int64, error)
	ListGateways(ctx context.Context) ([]store.GatewayLease, error)
	AddRoute(ctx context.Context, r store.Route, now time.Time) error
	RemoveRoute(ctx context.Context, r store.Route) error
	LookupRoute(ctx context.Context, id identity.DeviceID, now time.Time) (store.Route, error)
	ListRoutes(ctx context.Context, now time.Time) (map[identity.DeviceID]store.Route, error)
}

// Session is an attached node session, as the cluster routes it.
type Session struct {
	DeviceID identity.DeviceID
	Epoch    uint64
}

// Local is this gateway's side of a forwarded call.
type Local interface {
	// Epoch is the epoch of device id's current session here, 0 if none.
	Epoch(id identity.DeviceID) uint64
	// Sessions are the sessions attached here now.
	Sessions() []Session
	// Run runs inv on the node attached here as a direct call would
	// (manifest check, deadline), calling progress for its progress.
	Run(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, timeout time.Duration, progress func(*nodev1.Progress)) *nodev1.Result
}

// Config configures a Cluster.
type Config struct {
	// ID names this gateway among the others (identity.CheckGatewayID).
	ID string
	// NodeAddresses are the addresses nodes are told; PeerAddress is
	// where the other gateways reach this one (its QUIC port).
	NodeAddresses []string
	PeerAddress   string
	Store         Store
	// CA issues this gateway's peer certificate and verifies the others'.
	CA    *identity.CA
	Local Local
	// LeaseTTL: DefaultLeaseTTL if zero; RenewInterval: a third of it if
	// zero (two renewals may fail before the lease lapses).
	LeaseTTL      time.Duration
	RenewInterval time.Duration
	// Transport dials the peers; nil: one of its own on an ephemeral UDP
	// port.
	Transport *quic.Transport
	// Forwarded, if set, hears each forwarded call's outcome ("ok" or the
	// error code), for metrics.
	Forwarded func(outcome string)
	Now       func() time.Time
	Rand      io.Reader
	Logger    *slog.Logger
}

// Cluster is one gateway's membership of its database's gateways.
type Cluster struct {
	cfg Config
	log *slog.Logger

	certMu sync.Mutex
	cert   *tls.Certificate

	transport    *quic.Transport
	ownTransport bool
	closeOnce    sync.Once

	mu sync.Mutex
	// peers holds the connections to the other gateways, by ID.
	peers map[string]*peerConn
	// cache holds the routes read for forwarded calls.
	cache map[identity.DeviceID]cachedRoute
	// incoming counts the peer connections other gateways hold to this
	// one.
	incoming atomic.Int64
	// others holds the node addresses of the other live gateways, as read
	// at the last join or renewal.
	others atomic.Pointer[[]string]

	routes *routeWriter
}

// New checks cfg and returns the Cluster; Join makes it a member, Run
// keeps its lease. Close gives back what New opened, if Run never ran.
func New(cfg Config) (*Cluster, error) {
	if err := identity.CheckGatewayID(cfg.ID); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	switch {
	case cfg.Store == nil || cfg.CA == nil || cfg.Local == nil:
		return nil, errors.New("cluster: Config.Store, CA and Local are required")
	case cfg.PeerAddress == "":
		return nil, errors.New("cluster: Config.PeerAddress is required")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = cfg.LeaseTTL / 3
	}
	if cfg.RenewInterval >= cfg.LeaseTTL {
		return nil, fmt.Errorf("cluster: the renew interval %v must be shorter than the lease %v", cfg.RenewInterval, cfg.LeaseTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, peers: make(map[string]*peerConn), cache: make(map[identity.DeviceID]cachedRoute), transport: cfg.Transport}
	if _, err := c.certificate(); err != nil {
		return nil, err
	}
	if c.transport == nil {
		udp, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return nil, fmt.Errorf("cluster: opening a UDP socket to dial the other gateways: %w", err)
		}
		c.transport, c.ownTransport = &quic.Transport{Conn: udp}, true
	}
	c.routes = newRouteWriter(cfg.Store, cfg.ID, cfg.Now, cfg.Logger)
	return c, nil
}

// Join records this gateway among the database's gateways, with a lease
// from now and no routes left of an earlier run of the same ID; the
// gateway joins before it serves nodes, whose routes need its row.
func (c *Cluster) Join(ctx context.Context) error { return c.join(ctx) }

func (c *Cluster) join(ctx context.Context) error {
	now := c.cfg.Now()
	err := c.cfg.Store.JoinGateway(ctx, store.GatewayLease{
		ID: c.cfg.ID, NodeAddresses: c.cfg.NodeAddresses, PeerAddress: c.cfg.PeerAddress,
		StartedAt: now, LeaseExpires: now.Add(c.cfg.LeaseTTL),
	})
	if err != nil {
		return fmt.Errorf("joining the gateways of the database: %w", err)
	}
	c.readOthers(ctx, now)
	return nil
}

// readOthers reads where nodes reach the other live gateways, for
// NodeAddresses; on a failure it keeps what it read last.
func (c *Cluster) readOthers(ctx context.Context, now time.Time) {
	gws, err := c.cfg.Store.ListGateways(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("reading the other gateways' node addresses", "err", err)
		}
		return
	}
	var addrs []string
	for _, g := range gws {
		if g.ID != c.cfg.ID && g.Live(now) {
			addrs = append(addrs, g.NodeAddresses...)
		}
	}
	c.others.Store(&addrs)
}

// NodeAddresses are where nodes reach the gateways of the database: this
// one's own addresses first, then those of the other gateways that were
// live at the last renewal (by their IDs), each once.
func (c *Cluster) NodeAddresses() []string {
	out := slices.Clone(c.cfg.NodeAddresses)
	if others := c.others.Load(); others != nil {
		for _, a := range *others {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// ID is this gateway's ID.
func (c *Cluster) ID() string { return c.cfg.ID }

// PeerAddress is where the other gateways reach this one.
func (c *Cluster) PeerAddress() string { return c.cfg.PeerAddress }

// Run renews the lease every RenewInterval and writes routes until ctx
// ends; then it closes the peer connections and leaves the database's
// gateways (its routes go with it), so the others know at once.
func (c *Cluster) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { c.routes.run(ctx) })
	defer func() {
		wg.Wait()
		c.closePeers()
		c.closeTransport()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := c.cfg.Store.LeaveGateway(lctx, c.cfg.ID); err != nil {
			c.log.Error("leaving the gateways of the database", "err", err)
		}
	}()
	ticker := time.NewTicker(c.cfg.RenewInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		c.renew(ctx)
	}
}

// renew renews the lease, and joins again if a gateway that thought this
// one dead pruned its row (the routes of the sessions attached here are
// then written again).
func (c *Cluster) renew(ctx context.Context) {
	now := c.cfg.Now()
	err := c.cfg.Store.RenewGateway(ctx, c.cfg.ID, now.Add(c.cfg.LeaseTTL))
	if errors.Is(err, store.ErrNotFound) {
		c.log.Warn("this gateway's row was deleted as dead; joining again")
		if err = c.join(ctx); err == nil {
			for _, s := range c.cfg.Local.Sessions() {
				c.routes.attached(s)
			}
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("renewing this gateway's lease", "err", err, "lease", c.cfg.LeaseTTL)
		}
		return
	}
	if _, err := c.cfg.Store.PruneGateways(ctx, now.Add(-pruneAfter)); err != nil && ctx.Err() == nil {
		c.log.Warn("deleting long-dead gateways", "err", err)
	}
	c.readOthers(ctx, now)
}

// Attached records that s attached here (in the background, in order with
// Detached).
func (c *Cluster) Attached(s Session) { c.routes.attached(s) }

// Detached records that s, attached here, ended.
func (c *Cluster) Detached(s Session) { c.routes.detached(s) }

// Peer is another gateway of the database as this one sees it.
type Peer struct {
	store.GatewayLease
	Live bool
	// Connected: this gateway holds a connection to it now.
	Connected bool
}

// Peers lists the other gateways of the database.
func (c *Cluster) Peers(ctx context.Context) ([]Peer, error) {
	gws, err := c.cfg.Store.ListGateways(ctx)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now()
	var out []Peer
	for _, g := range gws {
		if g.ID == c.cfg.ID {
			continue
		}
		out = append(out, Peer{GatewayLease: g, Live: g.Live(now), Connected: c.connected(g.ID)})
	}
	return out, nil
}

// Holders maps every node held by a live gateway to that gateway's ID;
// the sessions attached here are this gateway's even before their routes
// are written.
func (c *Cluster) Holders(ctx context.Context) (map[identity.DeviceID]string, error) {
	routes, err := c.cfg.Store.ListRoutes(ctx, c.cfg.Now())
	if err != nil {
		return nil, err
	}
	out := make(map[identity.DeviceID]string, len(routes))
	for id, r := range routes {
		out[id] = r.GatewayID
	}
	for _, s := range c.cfg.Local.Sessions() {
		out[s.DeviceID] = c.cfg.ID
	}
	return out, nil
}

// PeerConnections is how many peer connections are open, both ways.
func (c *Cluster) PeerConnections() int {
	c.mu.Lock()
	n := 0
	for _, p := range c.peers {
		if p.live() {
			n++
		}
	}
	c.mu.Unlock()
	return n + int(c.incoming.Load())
}

// certificate returns this gateway's peer certificate, issued again
// before it runs out.
func (c *Cluster) certificate() (*tls.Certificate, error) {
	c.certMu.Lock()
	defer c.certMu.Unlock()
	now := c.cfg.Now()
	if c.cert != nil && now.Before(c.cert.Leaf.NotAfter.Add(-identity.DefaultServerCertLifetime/3)) {
		return c.cert, nil
	}
	pub, priv, err := ed25519.GenerateKey(c.cfg.Rand)
	if err != nil {
		return nil, err
	}
	leaf, err := c.cfg.CA.IssueGatewayCertificate(pub, c.cfg.ID, identity.IssueOptions{Now: now, Rand: c.cfg.Rand})
	if err != nil {
		return nil, err
	}
	c.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: priv, Leaf: leaf}
	return c.cert, nil
}

// TLSCertificate is the peer certificate, for quiccarrier.Peers.
func (c *Cluster) TLSCertificate() (*tls.Certificate, error) { return c.certificate() }

// VerifyPeer accepts another gateway's peer certificate of the shared CA
// only (never a device's, nor this gateway's own ID).
func (c *Cluster) VerifyPeer(rawCerts [][]byte) error {
	id, err := identity.VerifyGatewayCertificate(c.cfg.CA.Certificate(), rawCerts, c.cfg.Now())
	if err != nil {
		return err
	}
	if id == c.cfg.ID {
		return fmt.Errorf("the peer presents this gateway's own ID %q", id)
	}
	return nil
}

// Close closes what New opened (Run does it too); it may be called more
// than once.
func (c *Cluster) Close() { c.closeTransport() }

func (c *Cluster) closeTransport() {
	c.closeOnce.Do(func() {
		if c.ownTransport {
			conn := c.transport.Conn
			_ = c.transport.Close()
			_ = conn.Close()
		}
	})
}
