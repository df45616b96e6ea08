package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/internal/sdnotify"
	"github.com/palyra/palyra-go/internal/userdirs"
)

func cmdGatewayRun(env *environment) *cobra.Command {
	c := leaf("run", "run a gateway in the foreground", 0, 0)
	fs := c.Flags()
	dir := fs.String("data-dir", dataDir(env), "directory for the gateway's state (created 0700)")
	listen := fs.String("listen", gateway.DefaultListen, "HOST:PORT to listen on, TCP (pairing) and UDP (QUIC)")
	advertise := fs.String("advertise", "", "comma-separated HOST:PORT addresses nodes are told to use (default: the listen address); with several gateways on one database, this one's first and then the others', for nodes to fail over")
	peerAddress := fs.String("peer-address", "", "with --database: the HOST:PORT where the other gateways of the database reach this one (its QUIC port; default: the listen address)")
	gatewayID := fs.String("gateway-id", "", "with --database: this gateway's ID among the gateways of the database (lowercase letters, digits, hyphens; default: made once and kept in the data directory)")
	socket := fs.String("admin-socket", "", "admin API socket, on Windows its endpoint file (default $PALYRA_ADMIN_SOCKET or a per-user path)")
	name := fs.String("name", gateway.DefaultName, "the gateway's name, shown to devices")
	metricsListen := fs.String("metrics-listen", "", "loopback HOST:PORT to serve Prometheus metrics on, e.g. 127.0.0.1:9464 (default: none)")
	auditRetention := fs.Duration("audit-retention", gateway.DefaultAuditRetention, "how long audit rows are kept before the gateway deletes them (at least 1h; 2160h is 90 days)")
	maxUnauth := fs.Int("max-unauthenticated-conns", 0, fmt.Sprintf(
		"most TCP connections without a verified device certificate (pairing devices, connections in their handshake) at once; 0: %d, lowered to fit the open-file limit (ulimit -n); -1: no cap",
		gateway.DefaultMaxUnauthenticatedConns))
	maxUnauthPerSource := fs.Int("max-unauthenticated-per-source", 0,
		"most of those from one IPv4 address or IPv6 /64, below --max-unauthenticated-conns (raise it for many devices pairing behind one NAT); 0: 1/16 of it; -1: no cap")
	maxQUICHandshakes := fs.Int("max-quic-handshakes", 0, fmt.Sprintf(
		"most QUIC handshakes in progress at once (about 48 KB each); 0: %d; -1: no cap", gateway.DefaultMaxQUICHandshakes))
	maxQUICPerSource := fs.Int("max-quic-handshakes-per-source", 0,
		"most of those from one source that proved its address, below --max-quic-handshakes (raise it for many nodes behind one NAT); 0: 1/16 of it; -1: no cap")
	maxAdmitting := fs.Int("max-admitting-nodes", 0,
		"most paired nodes registering at once (after their handshake, until welcomed); past it a node is told \"gateway busy, retry in N s\" (1–10 s), which spreads a storm of reconnects out; 0 or -1: no cap")
	pairingBurst := fs.Int("pairing-burst", gateway.DefaultPairingBurst, "pairing attempts one source address may make at once (negative: no per-address limit)")
	pairingInterval := fs.Duration("pairing-interval", gateway.DefaultPairingInterval, "after its burst, a source address may make one more pairing attempt every DURATION")
	pairingConcurrency := fs.Int("pairing-concurrency", gateway.DefaultPairingConcurrency, "pairing attempts in progress at once, from all addresses (negative: no limit)")
	database := databaseFlag(env, c)
	noMigrate := fs.Bool("no-migrate", false, "do not migrate the database's schema (for operators who run 'palyra gateway migrate' themselves); refuse an older one")
	c.RunE = func(c *cobra.Command, _ []string) error {
		// Zero would mean the default in gateway.Config; on the command
		// line it would more likely be meant as "none", so it is refused.
		if *pairingBurst == 0 || *pairingConcurrency == 0 {
			return usagef("--pairing-burst and --pairing-concurrency must not be 0; a negative value turns the limit off")
		}
		if *pairingInterval <= 0 {
			return usagef("--pairing-interval must be positive")
		}
		db := database()
		if err := checkDatabaseURL(db); err != nil {
			return err
		}
		if db == "" && (*peerAddress != "" || *gatewayID != "") {
			return usagef("--peer-address and --gateway-id are for gateways sharing a PostgreSQL database (--database)")
		}
		return gatewayRun(c, env, gateway.Config{
			DataDir: *dir, Name: *name, Listen: *listen, AdminSocket: userdirs.AdminSocket(dirs(env), *socket),
			MetricsListen: *metricsListen, AuditRetention: *auditRetention,
			Database: db, SkipMigrations: *noMigrate, PeerAddress: *peerAddress, GatewayID: *gatewayID,

			MaxUnauthenticatedConns:          *maxUnauth,
			MaxUnauthenticatedConnsPerSource: *maxUnauthPerSource,
			MaxQUICHandshakes:                *maxQUICHandshakes,
			MaxQUICHandshakesPerSource:       *maxQUICPerSource,
			MaxAdmittingNodes:                *maxAdmitting,

			PairingBurst:       *pairingBurst,
			PairingInterval:    *pairingInterval,
			PairingConcurrency: *pairingConcurrency,
		}, *advertise)
	}
	return c
}

func gatewayRun(c *cobra.Command, env *environment, cfg gateway.Config, advertise string) error {
	level := slog.LevelInfo
	if verbose, _ := c.Flags().GetBool("verbose"); verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	cfg.Serving = sdnotify.Func(sdnotify.Ready, cfg.Logger)
	cfg.Stopping = sdnotify.Func(sdnotify.Stopping, cfg.Logger)
	if advertise != "" {
		cfg.Advertise = strings.Split(advertise, ",")
	}
	g, err := gateway.New(c.Context(), cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "gateway %q listening on %s; admin socket %s; store %s\n", cfg.Name, strings.Join(g.Addresses(), ", "),
		g.AdminAddr(), gateway.StoreLocation(cfg))
	if id := g.GatewayID(); id != "" {
		fmt.Fprintf(env.stderr, "gateway ID %s on PostgreSQL; %s\n", id, describePeers(c.Context(), g))
	}
	return g.Run(c.Context())
}

// describePeers says which other gateways of the database are alive.
func describePeers(ctx context.Context, g *gateway.Gateway) string {
	peers, err := g.Peers(ctx)
	if err != nil {
		return fmt.Sprintf("could not list the other gateways: %v", err)
	}
	var live []string
	for _, p := range peers {
		if p.Live {
			live = append(live, p.ID+" at "+p.PeerAddress)
		}
	}
	if len(live) == 0 {
		return "no other gateway of the database is running"
	}
	return "other gateways running: " + strings.Join(live, ", ")
}

// databaseFlag adds --database to c; the function it returns gives the
// flag's value, or $PALYRA_DATABASE_URL when the flag is not given. The
// variable keeps a password out of the process list, where other users
// can read a flag (and out of --help, where a default would show it).
func databaseFlag(env *environment, c *cobra.Command) func() string {
	database := c.Flags().String("database", "",
		"postgres:// URL of a PostgreSQL database to keep the state in, shared by several gateways, instead of the SQLite file in --data-dir (default $PALYRA_DATABASE_URL; a password is better there, in PGPASSWORD or in ~/.pgpass than in this flag)")
	return func() string {
		if !c.Flags().Changed("database") {
			return env.getenv("PALYRA_DATABASE_URL")
		}
		if u, err := url.Parse(*database); err == nil {
			if _, has := u.User.Password(); has {
				fmt.Fprintln(env.stderr, "palyra: warning: the --database URL holds a password, which other users of this machine can see in the process list; "+
					"put the URL in PALYRA_DATABASE_URL, or the password in PGPASSWORD or ~/.pgpass")
			}
		}
		return *database
	}
}

// checkDatabaseURL refuses a --database that is not a postgres:// URL.
func checkDatabaseURL(database string) error {
	if database != "" && !store.IsDatabaseURL(database) {
		return usagef("--database must be a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)")
	}
	return nil
}

func cmdGatewayMigrate(env *environment) *cobra.Command {
	c := leaf("migrate", "bring a PostgreSQL database's schema up to date, and nothing else", 0, 0)
	database := databaseFlag(env, c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		db := database()
		if db == "" {
			return usagef("--database (or PALYRA_DATABASE_URL) is required; a gateway on SQLite migrates its file itself")
		}
		if err := checkDatabaseURL(db); err != nil {
			return err
		}
		s, err := store.OpenPostgres(c.Context(), db, store.Options{})
		if err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s is at schema version %d\n", store.DescribeDatabase(db), store.SchemaVersion())
		return nil
	}
	return c
}
