package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/localsock"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// known is a device as resolveDevice and completion see it.
type known struct{ id, name string }

// knownDevices lists the gateway's devices, and the nodes it has seen that
// are no longer paired, by ID.
func knownDevices(ctx context.Context, client adminv1.AdminClient) ([]known, error) {
	devs, err := client.ListDevices(ctx, &adminv1.ListDevicesRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing devices to find the one named: %w", rpcError(err))
	}
	nodes, err := client.ListNodes(ctx, &adminv1.ListNodesRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes to find the one named: %w", rpcError(err))
	}
	var out []known
	for _, d := range devs.GetDevices() {
		out = append(out, known{d.GetDeviceId(), d.GetName()})
	}
	for _, n := range nodes.GetNodes() {
		if !slices.ContainsFunc(out, func(k known) bool { return k.id == n.GetDeviceId() }) {
			out = append(out, known{n.GetDeviceId(), n.GetName()})
		}
	}
	return out, nil
}

// compactID is a device ID or the start of one as compared: upper case,
// without dashes or spaces.
func compactID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(s))
}

// resolveDevice finds the device arg stands for: its ID (as a person may
// type it), then its exact name, then a unique start of its ID. A complete,
// well-formed ID the gateway does not know is passed on, so the gateway
// says what it knows of it.
func resolveDevice(ctx context.Context, client adminv1.AdminClient, arg string) (string, error) {
	if id, err := identity.ParseDeviceID(arg); err == nil {
		return id.String(), nil
	} else if len(compactID(arg)) >= len(compactID(identity.DeviceID{}.String())) {
		// As long as a whole ID: a typo, not a prefix or a name.
		return "", err
	}
	devices, err := knownDevices(ctx, client)
	if err != nil {
		return "", err
	}
	var named, prefixed []known
	want := compactID(arg)
	for _, d := range devices {
		if d.name == arg {
			named = append(named, d)
		}
		if want != "" && strings.HasPrefix(compactID(d.id), want) {
			prefixed = append(prefixed, d)
		}
	}
	for _, matches := range [][]known{named, prefixed} {
		switch len(matches) {
		case 0:
			continue
		case 1:
			return matches[0].id, nil
		}
		return "", ambiguous(arg, matches)
	}
	return "", fmt.Errorf("no device named or starting with %q (palyra devices list shows them)", printable(arg))
}

// ambiguous names the devices arg matches.
func ambiguous(arg string, matches []known) error {
	parts := make([]string, len(matches))
	for i, d := range matches {
		parts[i] = fmt.Sprintf("%s (%s)", printable(d.name), d.id)
	}
	return fmt.Errorf("ambiguous: %q matches %s; give more of the ID", printable(arg), strings.Join(parts, ", "))
}

// deviceArg makes c's first positional argument a device, completed from
// the gateway's list, and gives c its --admin-socket flag.
func deviceArg(c *cobra.Command, env *environment) *string {
	socket := addAdminFlag(c)
	c.ValidArgsFunction = func(c *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeDevices(c.Context(), env, *socket), cobra.ShellCompDirectiveNoFileComp
	}
	return socket
}

// completeDevices offers the gateway's devices by name and by ID, each
// described by the other; nothing when no gateway answers.
func completeDevices(ctx context.Context, env *environment, socket string) []cobra.Completion {
	if localsock.Check(adminSocket(env, socket)) != nil {
		return nil
	}
	client, done, err := adminClient(env, socket)
	if err != nil {
		return nil
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	devices, err := knownDevices(ctx, client)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, d := range devices {
		if d.name != "" {
			out = append(out, cobra.CompletionWithDesc(d.name, d.id))
		}
		out = append(out, cobra.CompletionWithDesc(d.id, d.name))
	}
	return out
}

// deviceClient connects to the gateway's admin socket and finds the device
// arg names (see resolveDevice).
func deviceClient(ctx context.Context, env *environment, socket, arg string) (adminv1.AdminClient, string, func(), error) {
	client, done, err := adminClient(env, socket)
	if err != nil {
		return nil, "", nil, err
	}
	id, err := resolveDevice(ctx, client, arg)
	if err != nil {
		done()
		return nil, "", nil, err
	}
	return client, id, done, nil
}
