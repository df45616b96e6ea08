// Command palyra is Palyra's command line: it runs a gateway, administers
// it through its admin socket, and runs a headless node. It is cgo-free.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/palyra/palyra-go/internal/version"
)

// command is one leaf of the command tree.
type command struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

var commands = map[string]command{
	"gateway run":       {"run a gateway in the foreground", cmdGatewayRun},
	"pairing code":      {"mint a pairing code (PIN, link and QR code)", cmdPairingCode},
	"pairing list":      {"list pairing requests", cmdPairingList},
	"pairing approve":   {"approve a pairing request", cmdPairingDecide(true)},
	"pairing reject":    {"reject a pairing request", cmdPairingDecide(false)},
	"nodes list":        {"list nodes and whether they are online", cmdNodesList},
	"nodes describe":    {"show a node's capabilities and recent events", cmdNodesDescribe},
	"nodes invoke":      {"run a capability on a node and print the result", cmdNodesInvoke},
	"nodes watch":       {"print node events as they happen", cmdNodesWatch},
	"calls list":        {"list calls queued for offline nodes and what became of them", cmdCallsList},
	"calls get":         {"print a queued call's result, waiting for it if need be", cmdCallsGet},
	"calls cancel":      {"cancel a queued call that has not ended", cmdCallsCancel},
	"devices list":      {"list paired devices", cmdDevicesList},
	"devices revoke":    {"revoke a device and cut its sessions", cmdDevicesRevoke},
	"devices remove":    {"forget a device (it stays refused)", cmdDevicesRemove},
	"node pair":         {"pair this machine with a gateway", cmdNodePair},
	"node run":          {"run this machine's node in the foreground", cmdNodeRun},
	"node status":       {"show this machine's node state", cmdNodeStatus},
	"node forget":       {"forget the gateway this machine is paired with", cmdNodeForget},
	"node capabilities": {"list or change what this machine shares", cmdNodeCapabilities},
	"doctor":            {"check this node: keychain, config, certificate, gateway over TCP and UDP", cmdDoctor},
}

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

// run dispatches and turns errors into a message and an exit code.
func run(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(env.stdout, "palyra", version.Version)
		return 0
	}
	cmd, ok := commands[args[0]]
	rest := args[1:]
	if !ok && len(args) >= 2 {
		cmd, ok = commands[args[0]+" "+args[1]]
		rest = args[2:]
	}
	if !ok {
		return unknown(env, args)
	}
	err := cmd.run(ctx, env, rest)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errSilent):
		return 1
	}
	fmt.Fprintln(env.stderr, "palyra:", err)
	return 1
}

var errUsage = errors.New("usage")

// errSilent ends a command with exit status 1 after it has said why.
var errSilent = errors.New("failed")

func unknown(env *environment, args []string) int {
	fmt.Fprintf(env.stderr, "palyra: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
	usage(env.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `palyra pairs devices with a Palyra gateway and runs both sides.

Usage: palyra <group> <command> [flags]   (add -h to any command for its flags)
       palyra doctor

`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, `
Environment: PALYRA_ADMIN_SOCKET (admin commands), PALYRA_CONFIG_DIR and
PALYRA_SECRET_STORE (node commands).`)
}

// newFlags makes a flag set whose errors and help go to stderr and end in
// errUsage rather than an exit.
func newFlags(env *environment, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: palyra %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, which may come before or after the positional
// arguments, and refuses any count of positional arguments but want.
func parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	return parseRange(fs, args, want, want)
}

// parseRange is parse for commands taking from least to most positional
// arguments.
func parseRange(fs *flag.FlagSet, args []string, least, most int) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional, args = append(positional, args[0]), args[1:]
	}
	if len(positional) < least || len(positional) > most {
		fs.Usage()
		return nil, errUsage
	}
	return positional, nil
}
