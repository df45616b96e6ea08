package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/palyra/palyra-go/gateway"
)

func cmdGatewayRun(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "gateway run", "[flags]")
	dir := fs.String("data-dir", dataDir(env), "directory for the gateway's state (created 0700)")
	listen := fs.String("listen", gateway.DefaultListen, "HOST:PORT to listen on, TCP (pairing) and UDP (QUIC)")
	advertise := fs.String("advertise", "", "comma-separated HOST:PORT addresses nodes are told to use (default: the listen address)")
	socket := fs.String("admin-socket", "", "admin API socket (default $PALYRA_ADMIN_SOCKET or a per-user path)")
	name := fs.String("name", gateway.DefaultName, "the gateway's name, shown to devices")
	metricsListen := fs.String("metrics-listen", "", "loopback HOST:PORT to serve Prometheus metrics on, e.g. 127.0.0.1:9464 (default: none)")
	pairingBurst := fs.Int("pairing-burst", gateway.DefaultPairingBurst, "pairing attempts one source address may make at once (negative: no per-address limit)")
	pairingInterval := fs.Duration("pairing-interval", gateway.DefaultPairingInterval, "after its burst, a source address may make one more pairing attempt every DURATION")
	pairingConcurrency := fs.Int("pairing-concurrency", gateway.DefaultPairingConcurrency, "pairing attempts in progress at once, from all addresses (negative: no limit)")
	verbose := fs.Bool("verbose", false, "log debug messages")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	// Zero would mean the default in gateway.Config; on the command line
	// it would more likely be meant as "none", so it is refused.
	if *pairingBurst == 0 || *pairingConcurrency == 0 {
		fmt.Fprintln(env.stderr, "palyra gateway run: --pairing-burst and --pairing-concurrency must not be 0; a negative value turns the limit off")
		return errUsage
	}
	if *pairingInterval <= 0 {
		fmt.Fprintln(env.stderr, "palyra gateway run: --pairing-interval must be positive")
		return errUsage
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	cfg := gateway.Config{
		DataDir:       *dir,
		Name:          *name,
		Listen:        *listen,
		AdminSocket:   adminSocket(env, *socket),
		MetricsListen: *metricsListen,
		Logger:        log,

		PairingBurst:       *pairingBurst,
		PairingInterval:    *pairingInterval,
		PairingConcurrency: *pairingConcurrency,
	}
	if *advertise != "" {
		cfg.Advertise = strings.Split(*advertise, ",")
	}
	g, err := gateway.New(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "gateway %q listening on %s; admin socket %s\n", *name, strings.Join(g.Addresses(), ", "), g.AdminAddr())
	return g.Run(ctx)
}
