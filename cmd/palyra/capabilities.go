package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/localapi"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

func cmdNodesDescribe(env *environment) *cobra.Command {
	c := leaf("describe DEVICE", "show a node's capabilities and recent events", 1, 1)
	socket := deviceArg(c, env)
	asJSON := c.Flags().Bool("json", false, "print JSON")
	c.RunE = func(c *cobra.Command, pos []string) error {
		client, id, done, err := deviceClient(c.Context(), env, *socket, pos[0])
		if err != nil {
			return err
		}
		defer done()
		d, err := client.DescribeNode(c.Context(), &adminv1.DeviceRequest{DeviceId: id})
		if err != nil {
			return rpcError(err)
		}
		return printNode(env, d, *asJSON)
	}
	return c
}

func printNode(env *environment, d *adminv1.NodeDetail, asJSON bool) error {
	n := d.GetNode()
	if asJSON {
		caps := []map[string]any{}
		for _, c := range d.Capabilities {
			caps = append(caps, map[string]any{
				"name": c.GetName(), "description": c.GetDescription(), "enabled": c.GetEnabled(),
				"consent": consentName(c.GetConsent()), "privacy": privacyName(c.GetPrivacy()),
			})
		}
		evs := []map[string]any{}
		for _, e := range d.RecentEvents {
			evs = append(evs, eventJSON(e))
		}
		return writeJSON(env.stdout, map[string]any{
			"device_id": n.GetDeviceId(), "name": n.GetName(), "platform": n.GetPlatform(), "version": n.GetVersion(),
			"online": n.GetOnline(), "transport": n.GetTransport(), "last_seen": unixMs(n.GetLastSeenUnixMs()),
			"capabilities": caps, "events": evs,
		})
	}
	state := "offline"
	if n.GetOnline() {
		state = "online over " + n.GetTransport()
	}
	fmt.Fprintf(env.stdout, "%s (%s, %s, palyra %s)\n%s, last seen %s\n\n", printable(n.GetName()), n.GetDeviceId(), printable(n.GetPlatform()), printable(n.GetVersion()), state, unixMs(n.GetLastSeenUnixMs()))
	if len(d.Capabilities) == 0 {
		fmt.Fprintln(env.stdout, "no capabilities known (the node has not connected since the gateway started)")
	} else {
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CAPABILITY\tENABLED\tCONSENT\tPRIVACY\tDESCRIPTION")
		for _, c := range d.Capabilities {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", printable(c.GetName()), c.GetEnabled(), consentName(c.GetConsent()), privacyName(c.GetPrivacy()), printable(c.GetDescription()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(d.RecentEvents) > 0 {
		fmt.Fprintln(env.stdout, "\nrecent events:")
		for _, e := range d.RecentEvents {
			fmt.Fprintf(env.stdout, "  %s  %-18s %s %s\n", unixMs(e.GetTimeUnixMs()), e.GetKind(), printable(e.GetCapability()), printable(e.GetMessage()))
		}
	}
	return nil
}

func eventJSON(e *adminv1.Event) map[string]any {
	return map[string]any{
		"time": unixMs(e.GetTimeUnixMs()), "device_id": e.GetDeviceId(), "kind": e.GetKind(),
		"capability": e.GetCapability(), "request_id": e.GetRequestId(), "message": e.GetMessage(),
	}
}

func consentName(c nodev1.Capability_Consent) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "CONSENT_"))
}

func privacyName(p nodev1.Capability_Privacy) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PRIVACY_"))
}

func cmdNodesInvoke(env *environment) *cobra.Command {
	c := leaf("invoke DEVICE CAPABILITY", "run a capability on a node and print the result", 2, 2)
	socket, fs := deviceArg(c, env), c.Flags()
	asJSON := fs.Bool("json", false, "print JSON: request_id, ok, output, error")
	argsJSON := fs.String("args", "{}", "the capability's arguments as a JSON object")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the node's answer")
	queueTTL := fs.Duration("queue-ttl", 0, "if the node is offline, keep the call this long and deliver it when it reconnects (0: fail at once)")
	c.RunE = func(c *cobra.Command, pos []string) error {
		if !json.Valid([]byte(*argsJSON)) {
			return usagef("--args is not valid JSON: %.60q", *argsJSON)
		}
		return invoke(c.Context(), env, *socket, pos, &adminv1.InvokeRequest{
			Capability: pos[1],
			ArgsJson:   []byte(*argsJSON),
			TimeoutMs:  timeout.Milliseconds(),
			QueueTtlMs: queueTTL.Milliseconds(),
		}, *asJSON)
	}
	return c
}

func invoke(ctx context.Context, env *environment, socket string, pos []string, req *adminv1.InvokeRequest, asJSON bool) error {
	client, id, done, err := deviceClient(ctx, env, socket, pos[0])
	if err != nil {
		return err
	}
	defer done()
	req.DeviceId = id
	resp, err := client.Invoke(ctx, req)
	if err != nil {
		return rpcError(err)
	}
	if asJSON {
		out := map[string]any{"request_id": resp.GetRequestId()}
		addResultJSON(out, resp)
		if resp.GetQueued() {
			out["queued"] = true
		}
		if err := writeJSON(env.stdout, out); err != nil {
			return err
		}
		if !resp.GetOk() {
			return errSilent
		}
		return nil
	}
	return printResult(env, pos[1], resp)
}

// addResultJSON puts a call's outcome in out: ok, and output or error.
func addResultJSON(out map[string]any, r *adminv1.InvokeResponse) {
	out["ok"], out["output"], out["error"] = r.GetOk(), nil, nil
	if r.GetOk() {
		out["output"] = json.RawMessage(r.GetOutputJson())
	} else {
		out["error"] = map[string]string{"code": r.GetErrorCode(), "message": r.GetErrorMessage()}
	}
}

// printResult shows a call's outcome to a person: its output on standard
// output, or why it failed on standard error, ending in errSilent then.
func printResult(env *environment, capability string, r *adminv1.InvokeResponse) error {
	if !r.GetOk() {
		fmt.Fprintf(env.stderr, "palyra: %s failed (%s): %s\n", printable(capability), printable(r.GetErrorCode()), printable(r.GetErrorMessage()))
		return errSilent
	}
	var pretty any
	if json.Unmarshal(r.GetOutputJson(), &pretty) == nil {
		return writeJSON(env.stdout, pretty)
	}
	return nil
}

func cmdNodeCapabilities(env *environment) *cobra.Command {
	c := leaf(`capabilities [enable NAME | disable NAME | consent NAME allow|ask|deny | allow-command PATH | disallow-command PATH | shared-folder DIR]`,
		"list or change what this machine shares", 0, 3)
	c.Long = `With no action, lists what this node shares. Changes apply at once to a
running node (and its gateway) and are kept for the next start.`
	nf := addNodeFlags(env, c.Flags())
	asJSON := c.Flags().Bool("json", false, "print JSON")
	c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return []cobra.Completion{"enable", "disable", "consent", "allow-command", "disallow-command", "shared-folder"}, cobra.ShellCompDirectiveNoFileComp
	}
	c.RunE = func(c *cobra.Command, pos []string) error {
		var change *node.SharingChange
		if len(pos) > 0 {
			ch, err := sharingChange(pos)
			if err != nil {
				return usageError{err}
			}
			change = &ch
		}
		return nodeCapabilities(c.Context(), env, nf, change, *asJSON)
	}
	return c
}

func nodeCapabilities(ctx context.Context, env *environment, nf nodeFlags, change *node.SharingChange, asJSON bool) error {
	socket := nf.runningSocket(env)
	if change != nil {
		// A running node applies it itself, and tells its gateway.
		infos, err := localapi.ChangeSharing(ctx, socket, *change)
		if err == nil {
			return printCapabilities(env, infos, asJSON)
		}
		if !errors.Is(err, localapi.ErrNotRunning) {
			return err
		}
	}
	a, err := nf.agent(env, "", nil)
	if err != nil {
		return err
	}
	if change != nil {
		if err := a.ChangeSharing(*change); err != nil {
			return err
		}
	}
	return printCapabilities(env, a.Capabilities(), asJSON)
}

func printCapabilities(env *environment, infos []capability.Info, asJSON bool) error {
	if asJSON {
		out := []map[string]any{}
		for _, c := range infos {
			out = append(out, map[string]any{
				"name": c.Name, "description": c.Description, "enabled": c.Enabled,
				"consent": c.Consent.String(), "privacy": c.Privacy.String(),
			})
		}
		return writeJSON(env.stdout, out)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CAPABILITY\tENABLED\tCONSENT\tPRIVACY\tDESCRIPTION")
	for _, c := range infos {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", c.Name, c.Enabled, c.Consent, c.Privacy, c.Description)
	}
	return tw.Flush()
}

// sharingChange reads the positional arguments of `node capabilities`.
func sharingChange(pos []string) (node.SharingChange, error) {
	want := map[string]int{"enable": 2, "disable": 2, "consent": 3, "allow-command": 2, "disallow-command": 2, "shared-folder": 2}
	n, ok := want[pos[0]]
	if !ok {
		return node.SharingChange{}, fmt.Errorf("unknown action %q", pos[0])
	}
	if len(pos) != n {
		return node.SharingChange{}, fmt.Errorf("%s takes %d argument(s)", pos[0], n-1)
	}
	c := node.SharingChange{Action: pos[0]}
	switch pos[0] {
	case "enable", "disable":
		c.Name = pos[1]
	case "consent":
		c.Name, c.Value = pos[1], pos[2]
	default:
		c.Value = pos[1]
	}
	return c, nil
}

func cmdNodesWatch(env *environment) *cobra.Command {
	c := leaf("watch [DEVICE]", "print node events as they happen", 0, 1)
	c.Long = "Prints node events as they happen (capability changes, consent decisions,\nerrors, invocations, online and offline) until interrupted."
	socket := deviceArg(c, env)
	asJSON := c.Flags().Bool("json", false, "print one JSON object per line")
	c.RunE = func(c *cobra.Command, pos []string) error {
		return watchNodes(c.Context(), env, *socket, pos, *asJSON)
	}
	return c
}

func watchNodes(ctx context.Context, env *environment, socket string, pos []string, asJSON bool) error {
	client, done, err := adminClient(env, socket)
	if err != nil {
		return err
	}
	defer done()
	req := &adminv1.WatchEventsRequest{}
	if len(pos) == 1 {
		if req.DeviceId, err = resolveDevice(ctx, client, pos[0]); err != nil {
			return err
		}
	}
	stream, err := client.WatchEvents(ctx, req)
	if err != nil {
		return rpcError(err)
	}
	// The gateway answers with headers once the watch is in place.
	if _, err := stream.Header(); err != nil {
		return rpcError(err)
	}
	fmt.Fprintln(env.stderr, "watching node events; interrupt to stop")
	enc := newJSONEncoder(env.stdout)
	for {
		e, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return rpcError(err)
		}
		if asJSON {
			if err := enc.Encode(eventJSON(e)); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(env.stdout, "%s  %s  %-18s %s %s\n", unixMs(e.GetTimeUnixMs()), e.GetDeviceId(), e.GetKind(), printable(e.GetCapability()), printable(e.GetMessage()))
	}
}
