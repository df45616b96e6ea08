// Command palyra is Palyra's command line: it runs a gateway, administers
// it through its admin socket, and runs a headless node. It is cgo-free.
//
// The command tree is built on cobra (github.com/spf13/cobra): it gives the
// group help people expect from kubectl or tailscale (`palyra nodes` lists
// its verbs), shell completion for bash, zsh, fish and PowerShell with
// dynamic completion of device names, and man pages through cobra/doc.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/internal/version"
)

// environment is what commands share: the streams and the environment
// variables, so tests can run commands in-process.
type environment struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &environment{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run runs the command args names and turns its error into a message and
// an exit code: 0, 1 when the command failed, 2 when it was used wrongly.
func run(ctx context.Context, env *environment, args []string) int {
	root := newRoot(env)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || errors.Is(err, errSilent) {
		if err != nil {
			return 1
		}
		return 0
	}
	if cmd == nil {
		cmd = root
	}
	verbose, _ := root.PersistentFlags().GetBool("verbose")
	var usage usageError
	if errors.As(err, &usage) {
		line := cmd.UseLine()
		if cmd.HasAvailableSubCommands() {
			line = cmd.CommandPath() + " COMMAND [flags]"
		}
		fmt.Fprintf(env.stderr, "%s: %s\nUsage: %s  (see '%s --help')\n", cmd.CommandPath(), usage.err, line, cmd.CommandPath())
		return 2
	}
	if asJSON := cmd.Flags().Lookup("json"); asJSON != nil && asJSON.Value.String() == "true" {
		writeJSON(env.stdout, map[string]any{"error": map[string]string{"message": shorten(err), "detail": err.Error()}})
		return 1
	}
	msg := shorten(err)
	switch {
	case verbose:
		msg = err.Error()
	case msg != err.Error():
		msg += " (--verbose for the whole error)"
	}
	fmt.Fprintln(env.stderr, "palyra:", msg)
	return 1
}

// newRoot builds the command tree, its output going to env's streams.
func newRoot(env *environment) *cobra.Command {
	root := &cobra.Command{
		Use:   "palyra",
		Short: "pair devices with a Palyra gateway and run both sides",
		Long: `palyra pairs devices with a Palyra gateway and runs both sides.

Devices and nodes can be named by ID, by name, or by a unique start of
their ID (case and dashes do not matter).

Environment: PALYRA_ADMIN_SOCKET (admin commands), PALYRA_CONFIG_DIR and
PALYRA_SECRET_STORE (node commands), PALYRA_DATABASE_URL (gateway run and
migrate).`,
		Version:                    version.Version,
		Args:                       noSubcommand,
		RunE:                       func(c *cobra.Command, _ []string) error { return c.Help() },
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		SilenceUsage:               true,
		DisableAutoGenTag:          true,
	}
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetVersionTemplate("palyra {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().Bool("verbose", false, "print errors whole, with every cause (gateway run: also log debug messages)")

	root.AddCommand(
		group("gateway", "run a gateway, migrate its database",
			cmdGatewayRun(env), cmdGatewayMigrate(env)),
		group("pairing", "mint pairing codes and decide pairing requests",
			cmdPairingCode(env), cmdPairingList(env), cmdPairingDecide(env, true), cmdPairingDecide(env, false)),
		group("nodes", "list, describe, watch nodes and run their capabilities (the gateway's view)",
			cmdNodesList(env), cmdNodesDescribe(env), cmdNodesInvoke(env), cmdNodesWatch(env)),
		group("calls", "queued calls for offline nodes",
			cmdCallsList(env), cmdCallsGet(env), cmdCallsCancel(env)),
		group("devices", "paired devices",
			cmdDevicesList(env), cmdDevicesRevoke(env), cmdDevicesRemove(env)),
		group("node", "this machine's node: pair, run, status, what it shares",
			cmdNodePair(env), cmdNodeRun(env), cmdNodeStatus(env), cmdNodeForget(env), cmdNodeCapabilities(env)),
		cmdDoctor(env),
		cmdBench(env),
		cmdVersion(env),
		cmdGenMan(),
	)
	return root
}

// group is a command whose subcommands do the work; on its own it prints
// its help, which lists them.
func group(name, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  noSubcommand,
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },

		SuggestionsMinimumDistance: 2,
	}
	c.AddCommand(subs...)
	return c
}

// leaf is a command with use (its name and positional arguments), a
// summary and from least to most positional arguments.
func leaf(use, short string, least, most int) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: nargs(least, most)}
}

// noSubcommand refuses a word that names no subcommand, suggesting the
// ones it may be a typo of.
func noSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
	}
	return usageError{errors.New(msg)}
}

// nargs refuses fewer than least or more than most positional arguments.
func nargs(least, most int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) >= least && len(args) <= most {
			return nil
		}
		want := fmt.Sprintf("%d to %d arguments", least, most)
		switch {
		case least == most && most == 0:
			return usageError{fmt.Errorf("takes no arguments, got %q", args[0])}
		case least == most:
			want = plural(least, "argument")
		}
		return usageError{fmt.Errorf("takes %s, got %d", want, len(args))}
	}
}

// usageError is a command used wrongly (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef is a usageError with a message.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errSilent ends a command with exit status 1 after it has said why.
var errSilent = errors.New("failed")
