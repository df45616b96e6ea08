// Command palyra-desktop is Palyra's tray application: a node (node.Agent)
// with a user interface, which can also run the whole system on one machine
// with its embedded local gateway (app/localgw).
//
// This package parses the flags, opens the secret store and the agent,
// serves the agent's local API (so `palyra node status` works beside the
// app), and starts the Fyne UI from package app. It is the only package
// that needs cgo (Fyne's OpenGL driver).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"github.com/palyra/palyra-go/app"
	"github.com/palyra/palyra-go/app/autostart"
	"github.com/palyra/palyra-go/app/localgw"
	"github.com/palyra/palyra-go/assets"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/localsock"
	"github.com/palyra/palyra-go/internal/oneinstance"
	"github.com/palyra/palyra-go/internal/userdirs"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/localapi"
)

// appID is the application's ID, as in FyneApp.toml.
const appID = "io.palyra.desktop"

// config is what the flags say.
type config struct {
	localGateway    bool
	headlessGateway bool
	configDir       string
	// configDirGiven is set when the directory was named (flag or
	// environment): the local API socket then lives inside it.
	configDirGiven bool
	secretStore    string
	profile        string
	name           string
	gatewayDir     string
	gatewayListen  string
}

// validate checks the flags' values.
func (c config) validate() error {
	if c.secretStore != secretstore.KindKeychain && c.secretStore != secretstore.KindFile {
		return fmt.Errorf("--secret-store must be %s or %s, not %q", secretstore.KindKeychain, secretstore.KindFile, c.secretStore)
	}
	if c.headlessGateway && c.localGateway {
		return errors.New("--headless-gateway runs only the gateway; leave out --local-gateway")
	}
	return nil
}

const usageText = `Usage: palyra-desktop [flags]

Palyra's desktop app: a node that shares the capabilities you choose with a
gateway, from the system tray (or a window where the desktop has no tray).
Pair it from its menu with a PIN or QR code, or run the gateway on this
machine too with --local-gateway.

  palyra-desktop                     the tray app
  palyra-desktop --local-gateway     also run a gateway on this machine, and
                                     pair this device with it automatically
  palyra-desktop --headless-gateway  only the local gateway, no window (servers, tests)

The device key lives in the OS keychain; on a machine without one choose
--secret-store file (0600 files in the config directory).

Flags:
`

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("palyra-desktop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	store := getenv("PALYRA_SECRET_STORE")
	if store == "" {
		store = secretstore.KindKeychain
	}
	var c config
	fs.BoolVar(&c.localGateway, "local-gateway", false, "run the local gateway too and pair this device with it")
	fs.BoolVar(&c.headlessGateway, "headless-gateway", false, "run only the local gateway, without a window, until interrupted")
	fs.StringVar(&c.configDir, "config-dir", "", "node configuration directory (default $PALYRA_CONFIG_DIR or the OS's per-user config dir, as for 'palyra node')")
	fs.StringVar(&c.secretStore, "secret-store", store, "where the device key lives: keychain (the OS keychain) or file (0600 files in the config dir)")
	fs.StringVar(&c.profile, "profile", "default", "keychain profile, for several nodes on one machine")
	fs.StringVar(&c.name, "name", "", "this device's name (default: as paired, or the host name)")
	fs.StringVar(&c.gatewayDir, "gateway-dir", "", "the local gateway's data directory (default: the per-user data dir, palyra/local-gateway)")
	fs.StringVar(&c.gatewayListen, "gateway-listen", "", "the local gateway's HOST:PORT (default 127.0.0.1 and the port it used last)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	dirs := userdirs.OS(getenv)
	c.configDirGiven = userdirs.NodeConfigDirGiven(dirs, c.configDir)
	c.configDir = userdirs.NodeConfigDir(dirs, c.configDir)
	return c, c.validate()
}

// nodeSocket is the agent's local API socket, where `palyra node` looks.
func nodeSocket(c config, getenv func(string) string) string {
	return userdirs.NodeSocket(userdirs.OS(getenv), c.configDir, c.configDirGiven)
}

// autostartArgs are the flags a login start needs to be this same app:
// those that choose the node (config dir, secret store, profile, name) and
// the local gateway, each only when it differs from the default, with the
// values the environment gave made explicit (the session that starts it
// may not have them). --headless-gateway never gets here: it has no menu.
func (c config) autostartArgs() []string {
	var args []string
	if c.localGateway {
		args = append(args, "--local-gateway")
	}
	if c.configDirGiven {
		args = append(args, "--config-dir", absPath(c.configDir))
	}
	if c.secretStore != secretstore.KindKeychain {
		args = append(args, "--secret-store", c.secretStore)
	}
	if c.profile != "default" {
		args = append(args, "--profile", c.profile)
	}
	if c.name != "" {
		args = append(args, "--name", c.name)
	}
	if c.gatewayDir != "" {
		args = append(args, "--gateway-dir", absPath(c.gatewayDir))
	}
	if c.gatewayListen != "" {
		args = append(args, "--gateway-listen", c.gatewayListen)
	}
	return args
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// autostartEntry is the app's login entry (an XDG autostart entry, or on
// Windows its Run key value), or nil where the app writes none (the menu
// then has no "Start at login").
func autostartEntry(c config, log *slog.Logger) app.Autostart {
	if !autostart.Supported(runtime.GOOS) {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		log.Info("no \"Start at login\": the app's own path is unknown", "err", err)
		return nil
	}
	entry, err := autostart.ForApp(exe, c.autostartArgs())
	if err != nil {
		log.Info("no \"Start at login\"", "err", err)
		return nil
	}
	return entry
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "palyra-desktop:", err)
		os.Exit(2)
	}
	if err := run(c, log); err != nil {
		fmt.Fprintln(os.Stderr, "palyra-desktop:", err)
		os.Exit(1)
	}
}

// checkDisplay refuses to start the UI where there is no graphical session
// to show it in (the toolkit would panic): on the Unix desktops an X11
// display, which Wayland desktops provide through XWayland (the app is not
// built with the toolkit's native Wayland driver).
func checkDisplay(goos string, getenv func(string) string) error {
	if goos == "darwin" || goos == "windows" || goos == "android" || goos == "ios" {
		return nil
	}
	if getenv("DISPLAY") != "" {
		return nil
	}
	return errors.New("no X11 display here (DISPLAY is not set; on a Wayland desktop, XWayland provides one); " +
		"run it from your desktop, or use 'palyra-desktop --headless-gateway' for only the gateway and 'palyra node run' for a node without a window")
}

func (c config) localOptions(log *slog.Logger) localgw.Options {
	return localgw.Options{DataDir: c.gatewayDir, Listen: c.gatewayListen, Logger: log.With("component", "local-gateway")}
}

func run(c config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.headlessGateway {
		return localgw.RunHeadless(ctx, c.localOptions(log), os.Stdout)
	}

	if err := checkDisplay(runtime.GOOS, os.Getenv); err != nil {
		return err
	}
	if !c.configDirGiven {
		from, err := userdirs.MoveOldNodeConfig(userdirs.OS(os.Getenv))
		if err != nil {
			return err
		}
		if from != "" {
			log.Info("moved the node's configuration to where this release keeps it", "from", from, "to", c.configDir)
		}
	}
	// One app per node: a second launch shows the first one's window and
	// ends here, before it opens the keys and a second agent.
	socket := nodeSocket(c, os.Getenv)
	inst, err := oneinstance.Acquire(filepath.Dir(socket))
	if errors.Is(err, oneinstance.ErrRunning) {
		fmt.Printf("palyra-desktop is already running for %s; brought its window forward\n", c.configDir)
		return nil
	}
	if err != nil {
		return err
	}
	defer inst.Close()
	secrets, err := secretstore.Open(c.secretStore, c.profile, filepath.Join(c.configDir, "secrets"))
	if err != nil {
		return fmt.Errorf("opening the secret store: %w", err)
	}
	fa := fyneapp.NewWithID(appID)
	fa.SetIcon(assets.Icon)
	prompter := app.NewPrompter(fa)
	agent, err := node.New(node.Config{
		ConfigDir: c.configDir, Secrets: secrets, Name: c.name, Asker: prompter, Logger: log.With("component", "node"),
	})
	if err != nil {
		return fmt.Errorf("opening the node: %w", err)
	}
	ln, err := localsock.Listen(socket)
	if err != nil {
		return fmt.Errorf("opening the node's local API (is 'palyra node run' or another palyra-desktop running with this config dir?): %w", err)
	}
	if err := userdirs.RecordSocket(c.configDir, userdirs.NodeSocketRecord, socket); err != nil {
		log.Warn("could not record the local API socket's path in the config directory", "err", err)
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan struct{})
	go func() {
		defer close(apiDone)
		if err := localapi.Serve(apiCtx, ln, agent); err != nil {
			log.Warn("node local API stopped", "err", err)
		}
	}()

	tray, err := app.TrayAvailable()
	if !tray {
		log.Info("no system tray here; showing the main window instead", "reason", err)
	}
	ui := app.New(fa, app.Options{
		Agent: agent,
		StartLocalGateway: func(ctx context.Context) (app.LocalGateway, error) {
			g, err := localgw.Start(ctx, c.localOptions(log))
			if err != nil {
				return nil, err
			}
			return localGateway{g: g, log: log}, nil
		},
		LocalGateway: c.localGateway,
		Autostart:    autostartEntry(c, log),
		Tray:         tray,
		Prompter:     prompter,
		Logger:       log.With("component", "ui"),
	})
	uiCtx, stopUI := context.WithCancel(context.Background())
	go func() {
		// A quit from the menu ends uiCtx first; only a signal quits here.
		select {
		case <-ctx.Done():
			log.Info("quitting on signal")
			fyne.Do(fa.Quit)
		case <-uiCtx.Done():
		}
	}()
	ui.Start(uiCtx)
	instDone := make(chan struct{})
	go func() {
		defer close(instDone)
		err := oneinstance.Serve(uiCtx, inst, func() {
			shown := make(chan struct{})
			fyne.Do(func() { ui.ShowMain(); close(shown) })
			select {
			case <-shown:
			case <-uiCtx.Done():
			}
		})
		if err != nil {
			log.Warn("later launches are no longer answered", "err", err)
		}
	}()
	log.Info("palyra-desktop running", "config_dir", c.configDir, "local_api", socket, "tray", tray)
	fa.Run()

	// Quit: the agent's session closes, then the local gateway and the
	// local API stop.
	stopUI()
	<-instDone
	ui.StopLocal()
	stopAPI()
	select {
	case <-apiDone:
	case <-time.After(5 * time.Second):
		log.Warn("the local API did not stop in time")
	}
	return nil
}

// localGateway adapts localgw.Gateway to app.LocalGateway.
type localGateway struct {
	g   *localgw.Gateway
	log *slog.Logger
}

func (l localGateway) Address() string { return l.g.Address() }

func (l localGateway) PairAgent(ctx context.Context, a *node.Agent) error {
	err := l.g.PairAgent(ctx, a)
	if errors.Is(err, localgw.ErrPairedElsewhere) {
		return fmt.Errorf("%w: %w", app.ErrPairedElsewhere, err)
	}
	return err
}

func (l localGateway) MintCode(ctx context.Context, ttl time.Duration) (app.PairingCode, error) {
	code, err := l.g.MintCode(ctx, ttl)
	if err != nil {
		return app.PairingCode{}, err
	}
	return app.PairingCode{PIN: code.PIN, Link: code.Link, ExpiresAt: code.ExpiresAt, QRPNG: code.QRPNG}, nil
}

func (l localGateway) Requests(ctx context.Context) <-chan app.PairingRequest {
	out := make(chan app.PairingRequest)
	in := l.g.Requests(ctx)
	go func() {
		defer close(out)
		for r := range in {
			select {
			case out <- app.PairingRequest{ID: r.ID, Name: r.Name, Platform: r.Platform, VerificationCode: r.VerificationCode, ExpiresAt: r.ExpiresAt}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (l localGateway) Approve(ctx context.Context, id string) error { return l.g.Approve(ctx, id) }
func (l localGateway) Reject(ctx context.Context, id string) error  { return l.g.Reject(ctx, id) }

func (l localGateway) Stop() {
	if err := l.g.Stop(); err != nil {
		l.log.Warn("the local gateway stopped with an error", "err", err)
	}
}
