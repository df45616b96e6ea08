package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// callStateNames are the call states as the command line spells them.
var callStateNames = map[adminv1.Call_State]string{
	adminv1.Call_STATE_QUEUED:    "queued",
	adminv1.Call_STATE_DELIVERED: "delivered",
	adminv1.Call_STATE_DONE:      "done",
	adminv1.Call_STATE_FAILED:    "failed",
	adminv1.Call_STATE_EXPIRED:   "expired",
	adminv1.Call_STATE_CANCELLED: "cancelled",
}

// pending reports whether a call in state s may still get a result.
func pending(s adminv1.Call_State) bool {
	return s == adminv1.Call_STATE_QUEUED || s == adminv1.Call_STATE_DELIVERED
}

// parseCallStates reads --state: comma-separated state names.
func parseCallStates(v string) ([]adminv1.Call_State, error) {
	if v == "" {
		return nil, nil
	}
	var out []adminv1.Call_State
	for _, name := range strings.Split(v, ",") {
		found := false
		for st, n := range callStateNames {
			if n == strings.TrimSpace(name) {
				out, found = append(out, st), true
			}
		}
		if !found {
			return nil, usagef("--state: no call state %q (queued, delivered, done, failed, expired, cancelled)", name)
		}
	}
	return out, nil
}

// callJSON is a call for scripts; with the result (ok, output, error) and
// arguments when full.
func callJSON(c *adminv1.Call, full bool) map[string]any {
	out := map[string]any{
		"request_id": c.GetRequestId(), "device_id": c.GetDeviceId(), "capability": c.GetCapability(),
		"caller": c.GetCaller(), "state": callStateNames[c.GetState()], "deliveries": c.GetAttempts(),
		"created_at": unixMs(c.GetCreatedAtUnixMs()), "expires_at": unixMs(c.GetExpiresAtUnixMs()),
		"finished_at": unixMs(c.GetFinishedAtUnixMs()),
	}
	if !full {
		return out
	}
	out["args"] = json.RawMessage(c.GetArgsJson())
	if len(c.GetArgsJson()) == 0 {
		out["args"] = json.RawMessage("{}")
	}
	if r := c.GetResult(); r != nil {
		addResultJSON(out, r)
	} else {
		out["ok"], out["output"], out["error"] = nil, nil, nil
	}
	return out
}

var callList = listFormat[*adminv1.Call]{
	none:   "no queued calls",
	header: "REQUEST\tDEVICE\tCAPABILITY\tSTATE\tDELIVERIES\tCREATED",
	row: func(c *adminv1.Call) []any {
		return []any{c.GetRequestId(), c.GetDeviceId(), printable(c.GetCapability()), callStateNames[c.GetState()],
			c.GetAttempts(), unixMs(c.GetCreatedAtUnixMs())}
	},
	json: func(c *adminv1.Call) map[string]any { return callJSON(c, false) },
}

func cmdCallsList(env *environment) *cobra.Command {
	c := leaf("list", "list calls queued for offline nodes and what became of them", 0, 0)
	c.Long = "Lists the calls queued with --queue-ttl, newest first, with what became of them."
	socket, fs := addAdminFlag(c), c.Flags()
	node := fs.String("node", "", "only the calls of this device (ID, name or start of the ID)")
	state := fs.String("state", "", "only calls in these states, comma-separated: queued, delivered, done, failed, expired, cancelled")
	limit := fs.Int("limit", 50, "list at most this many (1 to 1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	c.RegisterFlagCompletionFunc("node", func(c *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return completeDevices(c.Context(), env, *socket), cobra.ShellCompDirectiveNoFileComp
	})
	c.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(slices.Sorted(maps.Values(callStateNames)), cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(c *cobra.Command, _ []string) error {
		states, err := parseCallStates(*state)
		if err != nil {
			return err
		}
		client, done, err := adminClient(env, *socket)
		if err != nil {
			return err
		}
		defer done()
		req := &adminv1.ListCallsRequest{States: states, Limit: int32(*limit)}
		if *node != "" {
			if req.DeviceId, err = resolveDevice(c.Context(), client, *node); err != nil {
				return err
			}
		}
		resp, err := client.ListCalls(c.Context(), req)
		if err != nil {
			return rpcError(err)
		}
		return callList.print(env.stdout, resp.GetCalls(), *asJSON)
	}
	return c
}

// callWaitSlack is how long past a call's expiry `calls get` waits by
// default: the call has ended by then, one way or another.
const callWaitSlack = time.Minute

func cmdCallsGet(env *environment) *cobra.Command {
	c := leaf("get REQUEST_ID", "print a queued call's result, waiting for it if need be", 1, 1)
	c.Long = "Prints a queued call's result. If the call has none yet, waits for it (until\nthe call expires, --wait runs out, or you interrupt)."
	socket, fs := addAdminFlag(c), c.Flags()
	wait := fs.Duration("wait", 0, "wait at most this long for a pending call (default: until it ends)")
	noWait := fs.Bool("no-wait", false, "print a pending call's state at once")
	asJSON := fs.Bool("json", false, "print JSON: the call, with ok, output and error once it has ended")
	c.RunE = func(c *cobra.Command, pos []string) error {
		return callsGet(c.Context(), env, *socket, pos[0], *wait, *noWait, *asJSON)
	}
	return c
}

func callsGet(ctx context.Context, env *environment, socket, requestID string, wait time.Duration, noWait, asJSON bool) error {
	client, done, err := adminClient(env, socket)
	if err != nil {
		return err
	}
	defer done()
	c, err := client.GetCall(ctx, &adminv1.GetCallRequest{RequestId: requestID})
	if err != nil {
		return rpcError(err)
	}
	waited := false
	if pending(c.GetState()) && !noWait {
		d := wait
		if d <= 0 {
			d = time.Until(time.UnixMilli(c.GetExpiresAtUnixMs())) + callWaitSlack
		}
		fmt.Fprintf(env.stderr, "call %s (%s on %s) is %s; waiting for its result (it expires at %s; interrupt to stop)\n",
			c.GetRequestId(), printable(c.GetCapability()), c.GetDeviceId(), callStateNames[c.GetState()], unixMs(c.GetExpiresAtUnixMs()))
		ended, err := client.GetCall(ctx, &adminv1.GetCallRequest{RequestId: c.GetRequestId(), WaitMs: max(d.Milliseconds(), 1)})
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(env.stderr, "palyra: stopped waiting; call %s is still %s\n", c.GetRequestId(), callStateNames[c.GetState()])
				return errSilent
			}
			return rpcError(err)
		}
		c, waited = ended, true
	}
	if asJSON {
		if err := writeJSON(env.stdout, callJSON(c, true)); err != nil {
			return err
		}
	} else if r := c.GetResult(); r != nil {
		return printResult(env, c.GetCapability(), r)
	} else {
		fmt.Fprintf(env.stdout, "call %s (%s on %s) is %s after %d deliveries; it expires at %s\n", c.GetRequestId(),
			printable(c.GetCapability()), c.GetDeviceId(), callStateNames[c.GetState()], c.GetAttempts(), unixMs(c.GetExpiresAtUnixMs()))
	}
	switch {
	case pending(c.GetState()) && waited:
		fmt.Fprintf(env.stderr, "palyra: call %s is still %s\n", c.GetRequestId(), callStateNames[c.GetState()])
		return errSilent
	case c.GetResult() != nil && !c.GetResult().GetOk():
		return errSilent
	}
	return nil
}

func cmdCallsCancel(env *environment) *cobra.Command {
	c := leaf("cancel REQUEST_ID", "cancel a queued call that has not ended", 1, 1)
	c.Long = `Cancels a queued call that has not ended. One still queued never runs.
One already delivered may have run on its node, or be running: if it is
running now, the node is told to stop it (what it did stays done); it is
not delivered again, and a result that comes later is discarded.`
	socket := addAdminFlag(c)
	asJSON := c.Flags().Bool("json", false, "print JSON: the cancelled call and its previous_state")
	c.RunE = func(c *cobra.Command, pos []string) error {
		return callsCancel(c.Context(), env, *socket, pos[0], *asJSON)
	}
	return c
}

func callsCancel(ctx context.Context, env *environment, socket, requestID string, asJSON bool) error {
	client, done, err := adminClient(env, socket)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.CancelCall(ctx, &adminv1.CancelCallRequest{RequestId: requestID})
	if err != nil {
		return rpcError(err)
	}
	c := resp.GetCall()
	if asJSON {
		out := callJSON(c, true)
		out["previous_state"] = callStateNames[resp.GetPreviousState()]
		return writeJSON(env.stdout, out)
	}
	if resp.GetPreviousState() == adminv1.Call_STATE_QUEUED {
		fmt.Fprintf(env.stdout, "cancelled %s: it was still queued; node %s will never run it\n", c.GetRequestId(), c.GetDeviceId())
		return nil
	}
	fmt.Fprintf(env.stdout, "cancelled %s: it had been delivered to node %s (%d times), which may have run it already; "+
		"if the node is running it now it was told to stop; a result that comes later is discarded\n",
		c.GetRequestId(), c.GetDeviceId(), c.GetAttempts())
	return nil
}
