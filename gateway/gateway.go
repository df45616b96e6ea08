// Package gateway is the Palyra gateway as a library: New opens its store
// and certificate authority, Run serves the Pairing service (gRPC over TLS),
// the node sessions (QUIC with client certificates) and the admin API (gRPC
// on a Unix socket) until its context ends. `palyra gateway run`, the
// desktop app's local gateway and the tests all embed it. What clients that
// have not authenticated may hold (handshake and idle deadlines, caps on
// connections and QUIC handshakes) is bounded by the limits of its Config
// (limits.go).
//
// The pieces live in sub-packages (store, pairingsvc, quiccarrier, admin); this
// package only wires them together and owns their goroutines.
package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/palyra/palyra-go/gateway/admin"
	"github.com/palyra/palyra-go/gateway/adminrpc"
	"github.com/palyra/palyra-go/gateway/auditlog"
	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/gateway/cluster"
	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/events"
	"github.com/palyra/palyra-go/gateway/grpccarrier"
	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/gateway/presence"
	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/gateway/registrations"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/connlimit"
	"github.com/palyra/palyra-go/internal/dirlock"
	"github.com/palyra/palyra-go/internal/localsock"
	"github.com/palyra/palyra-go/internal/metrics"
	"github.com/palyra/palyra-go/internal/userdirs"
	"github.com/palyra/palyra-go/internal/wire"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// LockFile, in the data directory, is locked by the gateway using it and
// names its PID.
const LockFile = "gateway.lock"

// Defaults.
const (
	DefaultName     = "Palyra gateway"
	DefaultListen   = "127.0.0.1:7443"
	StoreFile       = "gateway.db"
	shutdownTimeout = 5 * time.Second
	sweepInterval   = 30 * time.Second
	// DefaultAuditRetention is how long audit rows are kept.
	DefaultAuditRetention = 90 * 24 * time.Hour
	// MinAuditRetention guards against a retention that would empty the
	// audit log as it is written (a mistyped unit, say).
	MinAuditRetention = time.Hour
	// auditPruneInterval is how often the sweeper deletes the audit rows
	// past the retention: a row lives at most this much longer.
	auditPruneInterval = time.Hour
	// auditFlushTimeout bounds writing the last audit rows when Run ends.
	auditFlushTimeout = 10 * time.Second
	// presenceFlushTimeout bounds writing the last last-seen times then.
	presenceFlushTimeout = 10 * time.Second
	// DefaultPresenceInterval is how often the last-seen times of connected
	// nodes are written.
	DefaultPresenceInterval = presence.DefaultInterval

	// Pairing limits (package gateway/pairingsvc/limit says why these).
	DefaultPairingBurst       = limit.DefaultBurst
	DefaultPairingInterval    = limit.DefaultInterval
	DefaultPairingConcurrency = limit.DefaultConcurrency
)

// Config describes one gateway. Listeners may be handed in (tests bind
// 127.0.0.1:0 first); otherwise Run opens them from the addresses.
type Config struct {
	// DataDir holds the store (and with it the CA key) unless Database
	// is set, and the gateway's lock and socket record; created 0700.
	DataDir string
	Name    string
	// Database, if set, is the postgres:// URL of the PostgreSQL database
	// the store is in instead of DataDir's SQLite file: several gateways
	// may share one. It may hold a password, which the gateway shows
	// nowhere (store.DescribeDatabase is what it logs).
	Database string
	// SweeperRetry is, on PostgreSQL, how often a gateway that is not the
	// sweeper tries to become it, and how often the sweeper checks the
	// connection that holds its lock; zero: cluster.DefaultLeaderRetry.
	SweeperRetry time.Duration
	// SkipMigrations leaves the database's schema alone, for operators
	// who migrate separately (palyra gateway migrate); New then refuses
	// a schema older than this program's.
	SkipMigrations bool
	// Listen is HOST:PORT for both TCP (pairing) and UDP (QUIC).
	Listen string
	// GatewayID names the gateway among the gateways of its database
	// (identity.CheckGatewayID); default: the one kept in DataDir's
	// GatewayIDFile, made the first time. Only with Database.
	GatewayID string
	// PeerAddress is the HOST:PORT the other gateways of the database
	// dial to forward calls to this one: its QUIC port, which serves them
	// under their own ALPN. Default: the listen address (for a wildcard
	// one, the first of the machine's addresses).
	PeerAddress string
	// PeerLeaseTTL is how long the other gateways count this one as alive
	// after its last renewal (renewed every third of it); zero means
	// cluster.DefaultLeaseTTL.
	PeerLeaseTTL time.Duration
	// Advertise lists the HOST:PORT addresses nodes are told to use;
	// default: the listen address, or for a wildcard one (0.0.0.0, [::])
	// the machine's addresses other machines could dial, with its port
	// (New refuses a wildcard when there are none).
	Advertise []string
	// InterfaceAddrs lists the machine's addresses for a wildcard Listen;
	// nil: net.InterfaceAddrs.
	InterfaceAddrs func() ([]net.Addr, error)
	// AdminSocket is the admin API's Unix socket, or on Windows its
	// endpoint file (internal/localsock).
	AdminSocket string

	TCPListener   net.Listener
	PacketConn    net.PacketConn
	AdminListener net.Listener

	LeaseTTL           time.Duration
	RequestTTL         time.Duration
	DeviceCertLifetime time.Duration
	// AuditRetention is how long audit rows are kept: the sweeper deletes
	// older ones. Zero means DefaultAuditRetention; less than
	// MinAuditRetention is refused.
	AuditRetention time.Duration
	// PresenceInterval is how often the last-seen times of connected nodes
	// are written to the store, all in one transaction (renewals only
	// touch memory); a node going away is written at once, and a clean
	// stop writes the rest, but a crash loses up to this much of them.
	// Zero means DefaultPresenceInterval.
	PresenceInterval time.Duration

	// Connection limits (limits.go has the defaults, README.md's "Security
	// limits" the reasons). HandshakeTimeout bounds a TCP connection's TLS
	// and HTTP/2 handshake; IdleTimeout closes a TCP connection with no
	// RPC in progress for that long (a node's gRPC session always has
	// one). Zero: the default.
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration
	// MaxUnauthenticatedConns caps the TCP connections that have not
	// presented a verified device certificate (pairing devices, and every
	// connection until its handshake); more are closed at accept. Zero:
	// DefaultMaxUnauthenticatedConns lowered to fit the open-file limit; a
	// cap set that does not fit is an error from New. Negative: no cap.
	MaxUnauthenticatedConns int
	// MaxUnauthenticatedConnsPerSource caps those of one IPv4 address or
	// IPv6 /64; it must be below MaxUnauthenticatedConns. Zero: 1/16 of
	// it; negative: no cap.
	MaxUnauthenticatedConnsPerSource int
	// MaxQUICHandshakes caps the QUIC handshakes in progress, of which one
	// source that proved its address may hold MaxQUICHandshakesPerSource. Zero:
	// DefaultMaxQUICHandshakes; negative: no cap.
	MaxQUICHandshakes int
	// MaxQUICHandshakesPerSource caps those of one source that proved its
	// address; it must be below MaxQUICHandshakes. Zero: 1/16 of it;
	// negative: no cap (many nodes behind one NAT, or in one process).
	MaxQUICHandshakesPerSource int
	// QUICRetryThreshold: from this many QUIC handshakes in progress on,
	// a client must prove its address with a Retry first; it must be below
	// MaxQUICHandshakes. Zero: half of MaxQUICHandshakes; negative: never.
	QUICRetryThreshold int
	// MaxAdmittingNodes caps the registrations of paired nodes in
	// progress (after the handshake, up to the Welcome; the handshakes are
	// capped by MaxQUICHandshakes); past it a node is answered "gateway
	// busy, retry in N s", N drawn from 1–10 s, so a storm of reconnects
	// spreads out instead of timing out in the queue for the store. Zero:
	// DefaultMaxAdmittingNodes (none); negative: no cap.
	MaxAdmittingNodes int

	// Limits on the Pairing service, which anyone may call: each source
	// address (IPv6 by /64) may start PairingBurst pairing, resume or
	// renewal calls at once and one more every PairingInterval, and at
	// most PairingConcurrency run at once from all addresses. Zero means
	// the default; a negative burst or concurrency turns that limit off.
	PairingBurst       int
	PairingInterval    time.Duration
	PairingConcurrency int

	// MetricsListen, if set, is a loopback HOST:PORT where Prometheus
	// metrics are served at /metrics (the endpoint has no
	// authentication, so other addresses are refused).
	MetricsListen string

	// Serving, if set, is called once Run serves every listener; Stopping
	// when Run begins to shut down (a service manager's readiness and
	// stopping notifications: internal/sdnotify).
	Serving  func()
	Stopping func()

	Logger *slog.Logger
	Now    func() time.Time
	Rand   io.Reader
}

// Gateway is a configured gateway, ready to Run.
type Gateway struct {
	cfg       Config
	store     *store.Store
	ca        *identity.CA
	pairing   *pairingsvc.Service
	admin     *admin.Service
	nodes     *quiccarrier.Server
	grpcNodes *grpccarrier.Server
	// sessions is the one table of live node sessions, of both carriers.
	sessions *carrier.Registry
	runtime  *nodeRuntime
	dispatch *dispatch.Dispatcher
	events   *events.Hub
	metrics  *gatewayMetrics
	// audit writes the audit rows of the paths that must not wait for the
	// disk: pairing refusals, refused node handshakes, direct calls.
	audit *auditlog.Writer
	// presence holds the last-seen times not yet written.
	presence *presence.Tracker
	// registrations writes node registrations in group commits.
	registrations *registrations.Writer
	limits        limits
	// cluster is the gateway's membership of its database's gateways; nil
	// on SQLite, where a gateway is alone.
	cluster *cluster.Cluster
	// unauthenticated counts the TCP connections without a verified
	// device certificate, for the caps.
	unauthenticated *connlimit.Limiter

	// metricsAddr is where metrics are served, once Run serves them.
	metricsMu   sync.Mutex
	metricsAddr net.Addr

	tcp   net.Listener
	udp   net.PacketConn
	admLn net.Listener

	// lock holds the data directory for this gateway alone.
	lock *dirlock.Lock
	// wildcard is what Addresses tells nodes when the gateway listens on
	// every interface and advertises nothing: the machine's addresses.
	wildcard []netip.Addr

	certMu sync.Mutex
	// cert is the current TLS server certificate; guarded by certMu.
	cert *tls.Certificate

	// On PostgreSQL (nil on SQLite): revocations closes the sessions of
	// devices revoked through other gateways, and sweeper decides whether
	// this gateway is the one that sweeps.
	revocations *cluster.Revocations
	sweeper     *cluster.Leader
}

// New opens the store, loads or creates the CA, and prepares the services.
// Listeners are opened here too, so Addresses is known before Run.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("gateway: a data directory is required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	switch {
	case cfg.AuditRetention == 0:
		cfg.AuditRetention = DefaultAuditRetention
	case cfg.AuditRetention < MinAuditRetention:
		return nil, fmt.Errorf("gateway: an audit retention of %v is shorter than the least allowed, %v", cfg.AuditRetention, MinAuditRetention)
	}
	if cfg.InterfaceAddrs == nil {
		cfg.InterfaceAddrs = net.InterfaceAddrs
	}
	lim, err := resolveLimits(cfg, connlimit.FileLimit())
	if err != nil {
		return nil, err
	}
	if err := validate(cfg); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, limits: lim}
	if len(cfg.Advertise) == 0 && cfg.TCPListener == nil {
		if g.wildcard, err = wildcardAddresses(cfg.Listen, cfg.InterfaceAddrs); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			g.closeAll()
		}
	}()
	// Two gateways on one store would each hand out codes and certificates
	// the other does not know of.
	if g.lock, err = dirlock.Acquire(cfg.DataDir, LockFile, "gateway"); err != nil {
		return nil, err
	}

	if g.store, err = openStore(ctx, cfg); err != nil {
		return nil, fmt.Errorf("opening gateway store: %w", err)
	}
	cfg.Logger.Info("opened gateway store", "backend", g.store.Backend(), "at", StoreLocation(cfg))
	if g.ca, err = g.loadCA(ctx); err != nil {
		return nil, err
	}
	if err := g.listen(); err != nil {
		return nil, err
	}
	if _, err := g.serverCertificate(); err != nil {
		return nil, err
	}
	g.runtime = &nodeRuntime{g: g}
	if g.sessions, err = carrier.NewRegistry(carrier.Config{
		Runtime:      g.runtime,
		Authenticate: g.authenticate,
		Refused:      g.sessionRefused,
		MaxAdmitting: capOf(cfg.MaxAdmittingNodes, DefaultMaxAdmittingNodes),
		Deferred:     func() { g.metrics.nodeDeferred() },
		Now:          cfg.Now,
		Logger:       cfg.Logger.With("component", "sessions"),
	}); err != nil {
		return nil, err
	}
	if cfg.Database != "" {
		if err := g.joinCluster(ctx); err != nil {
			return nil, err
		}
	}
	g.events = events.New()
	if cfg.MetricsListen != "" {
		// g.pairing is set below, before Run serves any scrape.
		g.metrics = newGatewayMetrics(gauges{
			connectedNodes:   func() float64 { return float64(g.sessions.Count()) },
			unauthenticated:  func() float64 { return float64(g.unauthenticated.Held()) },
			quicHandshakes:   func() float64 { return float64(g.nodes.HandshakesInProgress()) },
			pairingRuns:      func() float64 { return float64(g.pairing.RunsInProgress()) },
			pairingAddresses: func() float64 { return float64(g.pairing.TrackedAddresses()) },
			pairingWaiting:   func() float64 { return float64(g.pairing.DevicesWaiting()) },
			storeCommits:     func() float64 { return float64(g.store.Commits()) },
			sweeper:          func() float64 { return boolGauge(g.Sweeper()) },
			cluster:          g.clusterGauges(),
			peerConnections: func() float64 {
				if g.cluster == nil {
					return 0
				}
				return float64(g.cluster.PeerConnections())
			},
		})
	}
	if g.cluster, err = g.newCluster(); err != nil {
		return nil, err
	}
	if g.audit, err = auditlog.New(auditlog.Config{
		Store:    g.store,
		Now:      cfg.Now,
		Logger:   cfg.Logger.With("component", "audit"),
		Overflow: g.metrics.auditOverflow,
	}); err != nil {
		return nil, err
	}
	if g.presence, err = presence.New(presence.Config{
		Store:    g.store,
		Interval: cfg.PresenceInterval,
		Logger:   cfg.Logger.With("component", "presence"),
	}); err != nil {
		return nil, err
	}
	if g.registrations, err = registrations.New(registrations.Config{Store: g.store}); err != nil {
		return nil, err
	}
	if g.unauthenticated, err = connlimit.New(connlimit.Config{
		What:         "unauthenticated TCP connections",
		Max:          lim.unauthenticated,
		MaxPerSource: lim.perSource,
		Refused:      g.metrics.tcpRefused,
		Logger:       cfg.Logger.With("component", "tcp"),
	}); err != nil {
		return nil, err
	}
	quicLimits := lim.quic
	quicLimits.Refused, quicLimits.Retried = g.metrics.quicRefused, g.metrics.quicRetried
	if g.dispatch, err = dispatch.New(dispatch.Config{
		Store:   g.store,
		Events:  g.events,
		Offline: func(err error) bool { return errors.Is(err, carrier.ErrNodeOffline) },
		Gone:    func(err error) bool { return errors.Is(err, carrier.ErrNodeGone) },
		Moved:   func(err error) bool { return errors.Is(err, carrier.ErrNodeMoved) },
		Now:     cfg.Now,
		Rand:    cfg.Rand,
		Logger:  cfg.Logger.With("component", "dispatch"),
		Done:    g.metrics.invocationDone,
		Audit:   g.audit.Record,
		Remote:  g.remote(),
	}); err != nil {
		return nil, err
	}
	carriers := func(component string) carrier.Common {
		return carrier.Common{Registry: g.sessions, LeaseTTL: cfg.LeaseTTL, Logger: cfg.Logger.With("component", component),
			GatewayName: cfg.Name, Addresses: g.NodeAddresses}
	}
	if g.nodes, err = quiccarrier.NewServer(quiccarrier.Config{
		TLSCertificate: g.serverCertificate,
		Common:         carriers("nodes"),
		Limits:         quicLimits,
		Peers:          g.peerProtocol(),
	}); err != nil {
		return nil, err
	}
	if g.grpcNodes, err = grpccarrier.NewServer(grpccarrier.Config{Common: carriers("nodes-grpc")}); err != nil {
		return nil, err
	}
	if g.pairing, err = pairingsvc.New(pairingsvc.Config{
		Store:              g.store,
		CA:                 g.ca,
		ServerCertificate:  g.serverLeaf,
		Addresses:          g.pairingAddresses,
		GatewayName:        cfg.Name,
		Rand:               cfg.Rand,
		Now:                cfg.Now,
		Logger:             cfg.Logger.With("component", "pairing"),
		RequestTTL:         cfg.RequestTTL,
		DeviceCertLifetime: cfg.DeviceCertLifetime,
		Outcome:            g.metrics.pairingAttempt,
		Limits:             limit.Config{Burst: cfg.PairingBurst, Interval: cfg.PairingInterval, Concurrency: cfg.PairingConcurrency},
		Refused:            g.metrics.pairingRefused,
		Audit:              g.audit,
	}); err != nil {
		return nil, err
	}
	if g.admin, err = admin.New(admin.Config{
		Store:       freshStore{g.store, g.presence},
		Holders:     g.holders,
		Sessions:    g.runtime,
		Nodes:       g.dispatch,
		Events:      g.events,
		Decided:     g.pairing.Decided,
		CAPin:       g.ca.Fingerprint(),
		Addresses:   g.pairingAddresses,
		GatewayName: cfg.Name,
		Rand:        cfg.Rand,
		Now:         cfg.Now,
		Logger:      cfg.Logger.With("component", "admin"),
	}); err != nil {
		return nil, err
	}
	ok = true
	return g, nil
}

// joinCluster prepares what a gateway on PostgreSQL shares with the others
// of its database (package cluster): the listener for their revocations,
// which starts after the last revocation made so far (this gateway has no
// sessions yet), and its part in choosing the sweeper. Each has a
// connection of its own, named after the URL's application_name.
func (g *Gateway) joinCluster(ctx context.Context) error {
	after, err := g.store.LastRevocation(ctx)
	if err != nil {
		return err
	}
	dialRevocations, err := store.Dialer(g.cfg.Database, "revocations")
	if err != nil {
		return err
	}
	dialSweeper, err := store.Dialer(g.cfg.Database, "sweeper")
	if err != nil {
		return err
	}
	log := g.cfg.Logger.With("component", "cluster")
	if g.revocations, err = cluster.NewRevocations(cluster.RevocationsConfig{
		Dial:  dialRevocations,
		Store: g.store,
		After: after,
		Apply: func(r store.Revocation) {
			// The gateway that revoked has closed its own sessions of
			// the device already; here it has none, or they close now.
			if n := g.sessions.Disconnect(r.DeviceID, "revoked"); n > 0 {
				log.Info("closed the sessions of a device revoked through another gateway", "device", r.DeviceID, "sessions_closed", n)
			}
		},
		Logger: log,
	}); err != nil {
		return err
	}
	g.sweeper, err = cluster.NewLeader(cluster.LeaderConfig{Dial: dialSweeper, Retry: g.cfg.SweeperRetry, Logger: log})
	return err
}

// Sweeper reports whether this gateway runs the sweeps (expiring codes,
// requests and queued calls, pruning the audit log): on SQLite always, on
// PostgreSQL while it holds the sweeper lock (package cluster).
func (g *Gateway) Sweeper() bool {
	return g.sweeper == nil || g.sweeper.Leading()
}

// clusterGauges are the metrics of the revocation listener, nil on SQLite.
func (g *Gateway) clusterGauges() *clusterGauges {
	if g.revocations == nil {
		return nil
	}
	r := g.revocations
	return &clusterGauges{
		listening: func() float64 { return boolGauge(r.Listening()) },
		losses:    func() float64 { return float64(r.Losses()) },
		applied:   func() float64 { return float64(r.Applied()) },
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// openStore opens the store cfg names: its PostgreSQL database, or the
// SQLite file in its data directory.
func openStore(ctx context.Context, cfg Config) (*store.Store, error) {
	opts := store.Options{Now: cfg.Now, SkipMigrations: cfg.SkipMigrations}
	if cfg.Database != "" {
		return store.OpenPostgres(ctx, cfg.Database, opts)
	}
	return store.Open(ctx, filepath.Join(cfg.DataDir, StoreFile), opts)
}

// StoreLocation says where cfg's store is, for logs and messages: the
// database URL without its password, or the SQLite file's path.
func StoreLocation(cfg Config) string {
	if cfg.Database != "" {
		return store.DescribeDatabase(cfg.Database)
	}
	return filepath.Join(cfg.DataDir, StoreFile)
}

func (g *Gateway) loadCA(ctx context.Context) (*identity.CA, error) {
	certPEM, keyPEM, err := g.store.LoadCA(ctx)
	if err == nil {
		return parseCA(certPEM, keyPEM)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("loading gateway CA: %w", err)
	}
	ca, err := identity.NewCA(g.cfg.Rand, g.cfg.Name, g.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("creating gateway CA: %w", err)
	}
	certPEM, keyPEM, err = ca.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := g.store.SaveCA(ctx, certPEM, keyPEM); errors.Is(err, store.ErrIllegalTransition) {
		// Another gateway on the same database saved its CA first: all
		// gateways of a database share one CA, so use that one.
		if certPEM, keyPEM, err = g.store.LoadCA(ctx); err != nil {
			return nil, fmt.Errorf("loading the gateway CA another gateway saved: %w", err)
		}
		return parseCA(certPEM, keyPEM)
	} else if err != nil {
		return nil, fmt.Errorf("saving gateway CA: %w", err)
	}
	g.cfg.Logger.Info("created gateway CA", "fingerprint", ca.Fingerprint().String())
	return ca, nil
}

func parseCA(certPEM, keyPEM []byte) (*identity.CA, error) {
	ca, err := identity.ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading gateway CA: %w", err)
	}
	return ca, nil
}

// bindTries bounds ListenTCPAndUDP's draws of a port whose UDP twin is
// free.
const bindTries = 16

// ListenTCPAndUDP listens on TCP and UDP on one HOST:PORT, as a gateway
// serves gRPC and QUIC. With port 0 the kernel draws the TCP port, and a
// port whose UDP twin is taken (by any program's outgoing UDP socket,
// which take their ports from the same range) is given back for another
// draw, at most bindTries times.
func ListenTCPAndUDP(addr string) (net.Listener, net.PacketConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = bindTries
	}
	for try := 1; ; try++ {
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listening on TCP %s: %w", addr, err)
		}
		udpAddr := tcp.Addr().String()
		udp, err := net.ListenPacket("udp", udpAddr)
		if err == nil {
			return tcp, udp, nil
		}
		tcp.Close()
		if try == tries {
			if tries > 1 {
				return nil, nil, fmt.Errorf("finding a port free on both TCP and UDP for %s (%d tries): listening on UDP %s: %w", addr, tries, udpAddr, err)
			}
			return nil, nil, fmt.Errorf("listening on UDP %s: %w", udpAddr, err)
		}
	}
}

func (g *Gateway) listen() error {
	var err error
	g.tcp, g.udp = g.cfg.TCPListener, g.cfg.PacketConn
	switch {
	case g.tcp == nil && g.udp == nil:
		if g.tcp, g.udp, err = ListenTCPAndUDP(g.cfg.Listen); err != nil {
			return err
		}
	case g.tcp == nil:
		if g.tcp, err = net.Listen("tcp", g.cfg.Listen); err != nil {
			return fmt.Errorf("listening on TCP %s: %w", g.cfg.Listen, err)
		}
	case g.udp == nil:
		// QUIC shares the TCP port number, so one HOST:PORT serves both.
		udpAddr := g.tcp.Addr().String()
		if g.udp, err = net.ListenPacket("udp", udpAddr); err != nil {
			return fmt.Errorf("listening on UDP %s: %w", udpAddr, err)
		}
	}
	if g.admLn = g.cfg.AdminListener; g.admLn == nil {
		if g.admLn, err = localsock.Listen(g.cfg.AdminSocket); err != nil {
			return err
		}
		// For commands that compute another path (another
		// XDG_RUNTIME_DIR): they look here.
		if err := userdirs.RecordSocket(g.cfg.DataDir, userdirs.GatewaySocketRecord, g.cfg.AdminSocket); err != nil {
			g.cfg.Logger.Warn("could not record the admin socket's path in the data directory", "err", err)
		}
	}
	return nil
}

// Addresses returns where nodes reach this gateway.
func (g *Gateway) Addresses() []string {
	if len(g.cfg.Advertise) > 0 {
		return append([]string(nil), g.cfg.Advertise...)
	}
	if len(g.wildcard) > 0 {
		_, port, _ := net.SplitHostPort(g.tcp.Addr().String())
		addrs := make([]string, len(g.wildcard))
		for i, a := range g.wildcard {
			addrs[i] = net.JoinHostPort(a.String(), port)
		}
		return addrs
	}
	return []string{g.tcp.Addr().String()}
}

// AdminAddr is the admin API's listener address (the socket path, or on
// Windows the endpoint file's).
func (g *Gateway) AdminAddr() net.Addr { return g.admLn.Addr() }

// PairingDevicesWaiting is the number of devices connected and waiting for
// a decision on their pairing request (palyra_pairing_devices_waiting).
func (g *Gateway) PairingDevicesWaiting() int { return g.pairing.DevicesWaiting() }

// MetricsAddr is where Prometheus metrics are served, or nil (none
// configured, or Run has not started serving them yet).
func (g *Gateway) MetricsAddr() net.Addr {
	g.metricsMu.Lock()
	defer g.metricsMu.Unlock()
	return g.metricsAddr
}

// CA returns the gateway's certificate authority certificate.
func (g *Gateway) CA() *x509.Certificate { return g.ca.Certificate() }

// serverCertificate returns the TLS certificate for the pairing and node
// listeners, re-issuing it before it runs out; the chain carries the CA so a
// device paired by link can check its pin.
func (g *Gateway) serverCertificate() (*tls.Certificate, error) {
	g.certMu.Lock()
	defer g.certMu.Unlock()
	now := g.cfg.Now()
	if g.cert != nil && now.Before(g.cert.Leaf.NotAfter.Add(-identity.DefaultServerCertLifetime/3)) {
		return g.cert, nil
	}
	pub, priv, err := ed25519.GenerateKey(g.cfg.Rand)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, a := range g.Addresses() {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("advertised address %q: %w", a, err)
		}
		hosts = append(hosts, host)
	}
	leaf, err := g.ca.IssueServerCertificate(pub, g.cfg.Name, hosts, identity.IssueOptions{Now: now, Rand: g.cfg.Rand})
	if err != nil {
		return nil, fmt.Errorf("issuing gateway server certificate: %w", err)
	}
	g.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw, g.ca.Certificate().Raw}, PrivateKey: priv, Leaf: leaf}
	return g.cert, nil
}

func (g *Gateway) serverLeaf() []byte {
	c, err := g.serverCertificate()
	if err != nil {
		return nil
	}
	return c.Certificate[0]
}

// authenticate maps a client chain to a device: signed by our CA, valid now,
// and neither revoked nor removed. When the chain is good but the store
// cannot say whether the device is paired, the error is a
// *carrier.BusyError: the node is asked to come back, not told its
// certificate is bad.
func (g *Gateway) authenticate(rawCerts [][]byte) (identity.DeviceID, error) {
	id, err := identity.VerifyDeviceCertificate(g.ca.Certificate(), rawCerts, g.cfg.Now())
	if err != nil {
		return id, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// One lookup on the common path: a paired device's row says whether it
	// is revoked. A removed device has no row but stays revoked.
	dev, err := g.store.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		revoked, rerr := g.store.IsRevoked(ctx, id)
		switch {
		case rerr != nil:
			return id, carrier.Busy(fmt.Errorf("checking device %s: %w", id, rerr))
		case revoked:
			return id, identity.ErrRevoked
		}
		return id, fmt.Errorf("device %s is not paired with this gateway", id)
	}
	if err != nil {
		return id, carrier.Busy(fmt.Errorf("checking device %s: %w", id, err))
	}
	if !dev.RevokedAt.IsZero() {
		return id, identity.ErrRevoked
	}
	return id, nil
}

// sessionRefused audits a node connection or RPC whose certificate was
// refused: counted per source and minute, since anyone may try.
func (g *Gateway) sessionRefused(remote net.Addr, err error) {
	g.audit.Count(store.AuditEvent{Kind: store.AuditSessionRefused, Source: auditlog.Source(remote), Detail: err.Error()})
}

// NotRestarting says the shutdown that ends Run is for good (the desktop
// app's local gateway turned off), not a restart: the nodes are told the
// gateway shut down, with no GoAway window to come back within. Call it
// before ending Run's context.
func (g *Gateway) NotRestarting() { g.sessions.NotRestarting() }

// Run serves until ctx ends, then shuts everything down, writes the audit
// rows still buffered and closes the store. It returns the first error
// that stopped a server.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.closeAll()
	defer g.flushAudit()
	defer g.flushPresence()
	eg, ctx := errgroup.WithContext(ctx)
	// Metrics first: if their address is taken, nothing has started yet.
	if g.metrics != nil {
		addr, errc, err := metrics.Serve(ctx, g.cfg.MetricsListen, g.metrics.registry, g.cfg.Logger.With("component", "metrics"))
		if err != nil {
			return fmt.Errorf("serving metrics: %w", err)
		}
		g.metricsMu.Lock()
		g.metricsAddr = addr
		g.metricsMu.Unlock()
		eg.Go(func() error { return <-errc })
	}

	// Pairing devices have no certificate yet; the Node service checks the
	// one paired nodes present on every call. A connection counts against
	// the caps on unauthenticated connections until its client presents a
	// device certificate that authenticates, so that a flood of strangers
	// never holds the slots of paired nodes.
	tcpTLS := connlimit.ReleaseOnVerified(&tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequestClientCert,
		// VerifyPeerCertificate is not called on resumed sessions.
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return g.serverCertificate()
		},
	}, func(rawCerts [][]byte) error {
		_, err := g.authenticate(rawCerts)
		return err
	})
	pairingServer := grpc.NewServer(grpc.Creds(credentials.NewTLS(tcpTLS)),
		grpc.MaxRecvMsgSize(wire.MaxFrameSize), grpc.KeepaliveEnforcementPolicy(grpccarrier.KeepaliveEnforcement),
		grpc.ConnectionTimeout(g.limits.handshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: g.limits.idleTimeout}))
	pairingv1.RegisterPairingServer(pairingServer, g.pairing)
	g.grpcNodes.Register(pairingServer)
	adminServer := grpc.NewServer()
	adminv1.RegisterAdminServer(adminServer, adminrpc.New(g.admin))
	pairingHealth, adminHealth := addHealthAndReflection(pairingServer), addHealthAndReflection(adminServer)

	if g.cluster != nil {
		// Before any node attaches: its route needs this gateway's row.
		if err := g.cluster.Join(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while it started
			}
			return err
		}
		eg.Go(func() error { return g.cluster.Run(ctx) })
	}
	g.cfg.Logger.Info("gateway running", "name", g.cfg.Name, "addresses", g.Addresses(), "admin_socket", g.admLn.Addr().String(),
		"ca_fingerprint", g.ca.Fingerprint().String(), "backend", g.store.Backend(), "gateway_id", g.GatewayID())
	g.logPeers(ctx)
	g.cfg.Logger.Info("connection limits (0: none)", "open_file_limit", connlimit.FileLimit(),
		"tcp_handshake_timeout", g.limits.handshakeTimeout.String(), "tcp_idle_timeout", g.limits.idleTimeout.String(),
		"max_unauthenticated_conns", g.limits.unauthenticated, "max_unauthenticated_conns_per_source", g.limits.perSource,
		"max_quic_handshakes", g.limits.quic.MaxHandshakes, "max_quic_handshakes_per_source", g.limits.quic.MaxHandshakesPerSource,
		"quic_retry_threshold", g.limits.quic.RetryThreshold, "quic_handshake_timeout", g.limits.quic.HandshakeTimeout.String(),
		"max_admitting_nodes", capOf(g.cfg.MaxAdmittingNodes, DefaultMaxAdmittingNodes))
	eg.Go(func() error {
		return serveGRPC(ctx, pairingServer, connlimit.NewListener(g.tcp, g.unauthenticated), func() {
			pairingHealth.Shutdown()
			g.grpcNodes.Close()
		})
	})
	eg.Go(func() error { return serveGRPC(ctx, adminServer, g.admLn, adminHealth.Shutdown) })
	eg.Go(func() error { return g.nodes.Serve(ctx, g.udp) })
	if g.sweeper != nil {
		eg.Go(func() error { return g.revocations.Run(ctx) })
		eg.Go(func() error { return g.sweeper.Run(ctx, g.sweep) })
	} else {
		eg.Go(func() error { return g.sweep(ctx) })
	}
	eg.Go(func() error { return g.audit.Run(ctx) })
	eg.Go(func() error { return g.presence.Run(ctx) })
	// Every listener was bound in New, so connections made from here on
	// are served.
	if g.cfg.Serving != nil {
		g.cfg.Serving()
	}
	if g.cfg.Stopping != nil {
		eg.Go(func() error {
			<-ctx.Done()
			g.cfg.Stopping()
			return nil
		})
	}
	err := eg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// serveGRPC serves until ctx ends, then (after beforeStop, which ends
// streams that would otherwise hold it up) stops gracefully within a bound.
func serveGRPC(ctx context.Context, s *grpc.Server, ln net.Listener, beforeStop func()) error {
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if beforeStop != nil {
		beforeStop()
	}
	stopped := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(shutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.Stop()
		<-stopped
	}
	<-done
	return nil
}

// flushAudit writes the audit rows still buffered once everything that
// makes them has stopped.
func (g *Gateway) flushAudit() {
	ctx, cancel := context.WithTimeout(context.Background(), auditFlushTimeout)
	defer cancel()
	if err := g.audit.Flush(ctx); err != nil {
		g.cfg.Logger.Error("writing the last audit rows", "err", err)
	}
}

// flushPresence writes the last-seen times still in memory once every
// session has ended (each one's end noted by NodeGone), so a clean stop
// leaves the store with every node's final last-seen time.
func (g *Gateway) flushPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), presenceFlushTimeout)
	defer cancel()
	if err := g.presence.Flush(ctx); err != nil {
		g.cfg.Logger.Error("writing the last node presence", "err", err)
	}
}

// freshStore is the store as the admin API reads it: node listings carry
// the last-seen times the presence tracker has not written yet.
type freshStore struct {
	*store.Store
	presence *presence.Tracker
}

func (s freshStore) ListNodes(ctx context.Context) ([]store.Node, error) {
	nodes, err := s.Store.ListNodes(ctx)
	for i, n := range nodes {
		if at, ok := s.presence.LastSeen(n.DeviceID); ok && at.After(n.LastSeen) {
			nodes[i].LastSeen = at
		}
	}
	return nodes, err
}

// sweep expires stale codes and requests, so listings stay true even when
// nobody touches them, and deletes the audit rows past the retention. On
// PostgreSQL one gateway of the database runs it (Sweeper); everything it
// does changes a row only if it is still due, so two running at once (for
// the moment a sweeper takes to notice it lost its lock) do it once.
func (g *Gateway) sweep(ctx context.Context) error {
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	var pruned time.Time
	for {
		now := g.cfg.Now()
		if _, _, err := g.store.Sweep(ctx, now); err != nil && ctx.Err() == nil {
			g.cfg.Logger.Error("expiring stale codes and requests", "err", err)
		}
		if now.Sub(pruned) >= auditPruneInterval || now.Before(pruned) {
			n, err := g.store.PruneAudit(ctx, now.Add(-g.cfg.AuditRetention), now)
			switch {
			case err != nil && ctx.Err() == nil:
				g.cfg.Logger.Error("deleting audit rows past the retention", "err", err)
			case err == nil:
				pruned = now
				if n > 0 {
					g.cfg.Logger.Info("deleted audit rows past the retention", "rows", n, "retention", g.cfg.AuditRetention)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (g *Gateway) closeAll() {
	if g.cluster != nil {
		g.cluster.Close()
	}
	if g.tcp != nil && g.cfg.TCPListener == nil {
		g.tcp.Close()
	}
	if g.udp != nil && g.cfg.PacketConn == nil {
		g.udp.Close()
	}
	if g.admLn != nil && g.cfg.AdminListener == nil {
		g.admLn.Close()
	}
	if g.store != nil {
		g.store.Close()
		g.store = nil
	}
	// Last: the directory is free once nothing of this gateway uses it.
	if g.lock != nil {
		g.lock.Release()
		g.lock = nil
	}
}
