package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/sdnotify"
	"github.com/palyra/palyra-go/internal/userdirs"
)

func cmdGatewayRun(env *environment) *cobra.Command {
	c := leaf("run", "run a gateway in the foreground", 0, 0)
	fs := c.Flags()
	dir := fs.String("data-dir", dataDir(env), "directory for the gateway's state (created 0700)")
	listen := fs.String("listen", gateway.DefaultListen, "HOST:PORT to listen on, TCP (pairing) and UDP (QUIC)")
	advertise := fs.String("advertise", "", "comma-separated HOST:PORT addresses nodes are told to use (default: the listen address)")
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
	pairingBurst := fs.Int("pairing-burst", gateway.DefaultPairingBurst, "pairing attempts one source address may make at once (negative: no per-address limit)")
	pairingInterval := fs.Duration("pairing-interval", gateway.DefaultPairingInterval, "after its burst, a source address may make one more pairing attempt every DURATION")
	pairingConcurrency := fs.Int("pairing-concurrency", gateway.DefaultPairingConcurrency, "pairing attempts in progress at once, from all addresses (negative: no limit)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		// Zero would mean the default in gateway.Config; on the command
		// line it would more likely be meant as "none", so it is refused.
		if *pairingBurst == 0 || *pairingConcurrency == 0 {
			return usagef("--pairing-burst and --pairing-concurrency must not be 0; a negative value turns the limit off")
		}
		if *pairingInterval <= 0 {
			return usagef("--pairing-interval must be positive")
		}
		return gatewayRun(c, env, gateway.Config{
			DataDir: *dir, Name: *name, Listen: *listen, AdminSocket: userdirs.AdminSocket(dirs(env), *socket),
			MetricsListen: *metricsListen, AuditRetention: *auditRetention,

			MaxUnauthenticatedConns:          *maxUnauth,
			MaxUnauthenticatedConnsPerSource: *maxUnauthPerSource,
			MaxQUICHandshakes:                *maxQUICHandshakes,

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
	fmt.Fprintf(env.stderr, "gateway %q listening on %s; admin socket %s\n", cfg.Name, strings.Join(g.Addresses(), ", "), g.AdminAddr())
	return g.Run(c.Context())
}
