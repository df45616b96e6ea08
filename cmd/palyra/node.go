package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/palyra/palyra-go/identity/pairing/qr"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/localsock"
	"github.com/palyra/palyra-go/internal/userdirs"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/localapi"
	"github.com/palyra/palyra-go/node/pairclient"
)

// nodeFlags are the flags every node command shares.
type nodeFlags struct {
	configDir   *string
	secretStore *string
	profile     *string
}

func addNodeFlags(env *environment, fs interface {
	String(name, value, usage string) *string
}) nodeFlags {
	store := env.getenv("PALYRA_SECRET_STORE")
	if store == "" {
		store = secretstore.KindKeychain
	}
	return nodeFlags{
		configDir:   fs.String("config-dir", "", "node configuration directory (default $PALYRA_CONFIG_DIR or the OS's per-user config dir)"),
		secretStore: fs.String("secret-store", store, "where the device key lives: keychain (the OS keychain) or file (0600 files in the config dir)"),
		profile:     fs.String("profile", "default", "keychain profile, for several nodes on one machine"),
	}
}

// paths returns the node's config directory and the local API socket a
// node run here serves.
func (f nodeFlags) paths(env *environment) (dir, socket string) {
	e := dirs(env)
	dir = userdirs.NodeConfigDir(e, *f.configDir)
	return dir, userdirs.NodeSocket(e, dir, userdirs.NodeConfigDirGiven(e, *f.configDir))
}

// runningSocket is where the running node's local API is: the socket of
// paths, or the one a node run with another XDG_RUNTIME_DIR recorded.
func (f nodeFlags) runningSocket(env *environment) string {
	dir, socket := f.paths(env)
	return userdirs.FindSocket(socket, dir, userdirs.NodeSocketRecord)
}

// agent opens the node agent with the chosen secret store. A default
// config dir that an older release kept elsewhere is moved first.
func (f nodeFlags) agent(env *environment, name string, log *slog.Logger) (*node.Agent, error) {
	dir, _ := f.paths(env)
	if !userdirs.NodeConfigDirGiven(dirs(env), *f.configDir) {
		from, err := userdirs.MoveOldNodeConfig(dirs(env))
		if err != nil {
			return nil, err
		}
		if from != "" {
			fmt.Fprintf(env.stderr, "moved this node's configuration from %s to %s, where this release keeps it\n", from, dir)
		}
	}
	secrets, err := secretstore.Open(*f.secretStore, *f.profile, filepath.Join(dir, "secrets"))
	if err != nil {
		return nil, err
	}
	return node.New(node.Config{ConfigDir: dir, Secrets: secrets, Name: name, Logger: log})
}

// readSecretArg reads a secret flag value; "-" means standard input, which
// keeps the secret out of the process list.
func readSecretArg(env *environment, v string) (string, error) {
	if v != "-" {
		return v, nil
	}
	line, err := bufio.NewReader(io.LimitReader(env.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading from standard input: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func cmdNodePair(env *environment) *cobra.Command {
	c := leaf("pair", "pair this machine with a gateway", 0, 0)
	c.Long = "Pairs this machine with a gateway: give --gateway HOST:PORT and --pin PIN,\nor --link URI, or --qr-image FILE."
	fs := c.Flags()
	nf := addNodeFlags(env, fs)
	gw := fs.String("gateway", "", "the gateway's HOST:PORT (with --pin; overrides the link's addresses)")
	pin := fs.String("pin", "", "the PIN shown by the gateway, or - to read it from standard input (argv is visible to other local users)")
	link := fs.String("link", "", "the pairing link, or - to read it from standard input")
	qrImage := fs.String("qr-image", "", "an image file (PNG, JPEG, GIF) holding the pairing QR code")
	name := fs.String("name", "", "this device's name as the gateway shows it (default: host name)")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for an admin to approve")
	asJSON := fs.Bool("json", false, "print the resulting status as JSON")
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		var err error
		if *pin, err = readSecretArg(env, *pin); err != nil {
			return err
		}
		if *link, err = readSecretArg(env, *link); err != nil {
			return err
		}
		if *qrImage != "" {
			if *link != "" {
				return errors.New("give either --link or --qr-image, not both")
			}
			f, err := os.Open(*qrImage)
			if err != nil {
				return fmt.Errorf("opening QR image: %w", err)
			}
			text, err := qr.DecodeReader(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", *qrImage, err)
			}
			*link = text
		}
		a, err := nf.agent(env, *name, nil)
		if err != nil {
			return err
		}
		if a.Paired() {
			st := a.Status()
			return fmt.Errorf("this node is already paired with %s; run 'palyra node forget' first", st.GatewayName)
		}
		if *pin == "" && *link == "" && a.HasPendingPairing() {
			st := a.Status()
			fmt.Fprintf(env.stderr, "still waiting for approval of request %s (verification code %s); collecting the certificate once approved\n",
				st.PairingRequestID, st.VerificationCode)
		}
		ctx, cancel := context.WithTimeout(ctx, *wait)
		defer cancel()
		fmt.Fprintln(env.stderr, "pairing…")
		st, err := a.Pair(ctx, node.PairOptions{
			Gateway: *gw, PIN: *pin, Link: *link,
			OnPending: func(p pairclient.Pending) {
				fmt.Fprintf(env.stderr, "waiting for approval (request %s)\nverification code: %s — check that the gateway shows the same code\n(waiting up to %s; Ctrl-C to give up)\n",
					p.RequestID, p.VerificationCode, wait.Round(time.Second))
			},
		})
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("gave up waiting for approval after %s; the request stays pending until it expires: run 'palyra node pair' or 'palyra node run' to collect the certificate once approved", *wait)
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.stdout, st)
		}
		fmt.Fprintf(env.stdout, "paired with %s as %s (device %s)\nrun 'palyra node run' to connect\n", st.GatewayName, st.DeviceName, st.DeviceID)
		return nil
	}
	return c
}

func cmdNodeRun(env *environment) *cobra.Command {
	c := leaf("run", "run this machine's node in the foreground", 0, 0)
	fs := c.Flags()
	nf := addNodeFlags(env, fs)
	name := fs.String("name", "", "this device's name (default: as paired)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		log := slog.New(slog.NewTextHandler(env.stderr, nil))
		dir, socket := nf.paths(env)
		a, err := nf.agent(env, *name, log)
		if err != nil {
			return err
		}
		if !a.Paired() && !a.HasPendingPairing() {
			return errors.New("this node is not paired; run 'palyra node pair' first")
		}
		// Without Unix sockets (a Unix without AF_UNIX; Windows uses a
		// loopback port instead) the node still connects and runs calls;
		// only the local API is missing.
		ln, err := localsock.Listen(socket)
		switch {
		case errors.Is(err, localsock.ErrUnsupported):
			log.Warn("running without the local API: palyra node status and the desktop app cannot reach this node", "err", err)
		case err != nil:
			return err
		default:
			if err := userdirs.RecordSocket(dir, userdirs.NodeSocketRecord, socket); err != nil {
				log.Warn("could not record the local API socket's path in the config directory", "err", err)
			}
		}
		eg, ctx := errgroup.WithContext(ctx)
		if ln != nil {
			eg.Go(func() error { return localapi.Serve(ctx, ln, a) })
		}
		// When the agent stops (revoked), the group's context ends and the
		// local API with it.
		eg.Go(func() error { return a.Run(ctx) })
		// Print state changes for the person watching the terminal.
		watch, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			for st := range a.Watch(watch) {
				fmt.Fprintln(env.stderr, describe(st))
			}
		}()
		return eg.Wait()
	}
	return c
}

// describe is the one-line form of a status.
func describe(st node.Status) string {
	switch st.State {
	case node.StateConnected:
		if st.OverTCP() {
			// The reason in a few words; --json has FallbackError in full.
			line := fmt.Sprintf("connected to %s as %s over gRPC (TCP)", st.GatewayName, st.DeviceName)
			if st.FallbackReason != "" {
				line += ": " + st.FallbackReason
			}
			return line
		}
		return fmt.Sprintf("connected to %s as %s", st.GatewayName, st.DeviceName)
	case node.StateOffline:
		if !st.RetryAt.IsZero() {
			return fmt.Sprintf("offline, retrying in %s (%s)", time.Until(st.RetryAt).Round(time.Second), st.LastError)
		}
		if st.LastError != "" {
			return "offline: " + st.LastError
		}
		return "offline"
	case node.StateRevoked:
		if !st.RevokedAt.IsZero() {
			return st.LastError
		}
		return "revoked: " + st.LastError
	case node.StatePending:
		return fmt.Sprintf("waiting for approval of pairing request %s (verification code %s); 'palyra node pair' or 'palyra node run' collects the certificate once approved", st.PairingRequestID, st.VerificationCode)
	case node.StateUnpaired:
		return "not paired; pair with 'palyra node pair'"
	}
	return string(st.State)
}

func cmdNodeStatus(env *environment) *cobra.Command {
	c := leaf("status", "show this machine's node state", 0, 0)
	fs := c.Flags()
	nf := addNodeFlags(env, fs)
	asJSON := fs.Bool("json", false, "print JSON (key state, and more)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		socket := nf.runningSocket(env)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := localapi.Status(ctx, socket)
		if errors.Is(err, localapi.ErrNotRunning) {
			// Not running: say what is stored.
			a, aerr := nf.agent(env, "", nil)
			if aerr != nil {
				return aerr
			}
			st = a.Status()
			if st.State == node.StateOffline {
				st.LastError = "the node is not running; start it with 'palyra node run'"
			}
		} else if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.stdout, st)
		}
		fmt.Fprintln(env.stdout, describe(st))
		if st.DeviceID != "" {
			fmt.Fprintf(env.stdout, "device:  %s (%s)\n", st.DeviceID, st.DeviceName)
		}
		if st.GatewayName != "" {
			fmt.Fprintf(env.stdout, "gateway: %s at %s\n", st.GatewayName, strings.Join(st.Gateways, ", "))
		}
		return nil
	}
	return c
}

func cmdNodeForget(env *environment) *cobra.Command {
	c := leaf("forget", "forget the gateway this machine is paired with", 0, 0)
	fs := c.Flags()
	nf := addNodeFlags(env, fs)
	c.RunE = func(c *cobra.Command, _ []string) error {
		a, err := nf.agent(env, "", nil)
		if err != nil {
			return err
		}
		if err := a.Forget(); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, "forgot the gateway; the device key stays, so pairing again keeps the same device ID")
		return nil
	}
	return c
}
