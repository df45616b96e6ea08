package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/adminrpc"
	"github.com/palyra/palyra-go/identity/pairing/qr"
	"github.com/palyra/palyra-go/internal/localsock"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// adminClient connects to the gateway's admin socket (on Windows, the
// loopback port its endpoint file names, with the file's token). The
// socket's file mode, or the token only its user can read, is the access
// control, so the connection itself needs no TLS.
func adminClient(env *environment, flagValue string) (adminv1.AdminClient, func(), error) {
	path := adminSocket(env, flagValue)
	if err := localsock.Check(path); err != nil {
		if errors.Is(err, localsock.ErrNoSocket) {
			return nil, nil, fmt.Errorf("no gateway admin socket at %s (is the gateway running? set --admin-socket or PALYRA_ADMIN_SOCKET)", path)
		}
		return nil, nil, fmt.Errorf("the gateway's admin socket: %w", err)
	}
	// Every connection gRPC opens goes through localsock.Dial; the
	// authority is a fixed name, since a path is none.
	conn, err := grpc.NewClient("passthrough:///admin", append(adminrpc.DialOptions(),
		grpc.WithAuthority("localhost"),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return localsock.Dial(ctx, path) }))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the admin socket %s: %w", path, err)
	}
	return adminv1.NewAdminClient(conn), func() { conn.Close() }, nil
}

// addAdminFlag gives c the --admin-socket flag every admin command has.
func addAdminFlag(c *cobra.Command) *string {
	return c.Flags().String("admin-socket", "", "gateway admin socket, on Windows its endpoint file (default $PALYRA_ADMIN_SOCKET or a per-user path)")
}

// listFormat says how a list command prints its items: for people, a
// table (or the line none when there are none); for scripts, a JSON array.
type listFormat[T any] struct {
	none   string
	header string // the columns, tab-separated
	row    func(T) []any
	json   func(T) map[string]any
}

func (f listFormat[T]) print(w io.Writer, items []T, asJSON bool) error {
	if asJSON {
		out := make([]map[string]any, 0, len(items))
		for _, it := range items {
			out = append(out, f.json(it))
		}
		return writeJSON(w, out)
	}
	if len(items) == 0 {
		fmt.Fprintln(w, f.none)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, f.header)
	for _, it := range items {
		for i, cell := range f.row(it) {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, cell)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// printable replaces control characters (escape sequences a device could
// put in its name or messages) before text reaches a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// rpcError turns a gRPC status into the gateway's own words.
func rpcError(err error) error {
	if st, ok := status.FromError(err); ok {
		return errors.New(st.Message())
	}
	return err
}

// writeJSON prints v indented. It leaves &, < and > as they are: the
// output is read by people and scripts, never embedded in HTML, and a
// pairing link's "&" must stay copyable.
func writeJSON(w io.Writer, v any) error {
	enc := newJSONEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newJSONEncoder is how the command line encodes JSON: see writeJSON.
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

func unixMs(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func cmdPairingCode(env *environment) *cobra.Command {
	c := leaf("code", "mint a pairing code (PIN, link and QR code)", 0, 0)
	socket, fs := addAdminFlag(c), c.Flags()
	ttl := fs.Duration("ttl", 10*time.Minute, "how long the code stays valid (30s to 24h)")
	auto := fs.Bool("auto-approve", false, "issue the certificate without waiting for approval")
	name := fs.String("name", "", "a name for the code, shown with the request it produces")
	png := fs.String("qr-png", "", "also write the QR code to this PNG file")
	asJSON := fs.Bool("json", false, "print JSON (keys pin, link, expires_at)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		return pairingCode(c.Context(), env, *socket, *ttl, *auto, *name, *png, *asJSON)
	}
	return c
}

func pairingCode(ctx context.Context, env *environment, socket string, ttl time.Duration, auto bool, name, png string, asJSON bool) error {
	client, done, err := adminClient(env, socket)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.MintNodePairingCode(ctx, &adminv1.MintNodePairingCodeRequest{TtlMs: ttl.Milliseconds(), AutoApprove: auto, Name: name})
	if err != nil {
		return rpcError(err)
	}
	if png != "" {
		img, err := qr.PNG(resp.Link, qr.DefaultPNGSize)
		if err != nil {
			return err
		}
		// The QR code carries the code's secret: keep the file private.
		if err := os.WriteFile(png, img, 0o600); err != nil {
			return fmt.Errorf("writing QR code: %w", err)
		}
	}
	if asJSON {
		return writeJSON(env.stdout, map[string]any{"pin": resp.Pin, "link": resp.Link, "expires_at": unixMs(resp.ExpiresAtUnixMs)})
	}
	text, err := qr.Terminal(resp.Link)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s\nPIN:     %s\nLink:    %s\nExpires: %s\n", text, resp.Pin, resp.Link, unixMs(resp.ExpiresAtUnixMs))
	if png != "" {
		fmt.Fprintf(env.stdout, "QR code: %s\n", png)
	}
	return nil
}

var requestStates = map[adminv1.PairingRequest_State]string{
	adminv1.PairingRequest_STATE_PENDING:  "pending",
	adminv1.PairingRequest_STATE_APPROVED: "approved",
	adminv1.PairingRequest_STATE_REJECTED: "rejected",
	adminv1.PairingRequest_STATE_EXPIRED:  "expired",
}

func requestJSON(r *adminv1.PairingRequest) map[string]any {
	return map[string]any{
		"request_id": r.RequestId, "device_id": r.DeviceId, "name": r.Name, "platform": r.Platform,
		"verification_code": r.VerificationCode, "state": requestStates[r.State], "created_at": unixMs(r.CreatedAtUnixMs),
	}
}

var pairingRequestList = listFormat[*adminv1.PairingRequest]{
	none:   "no pairing requests",
	header: "REQUEST\tNAME\tPLATFORM\tVERIFICATION\tSTATE",
	row: func(r *adminv1.PairingRequest) []any {
		return []any{r.RequestId, printable(r.Name), printable(r.Platform), r.VerificationCode, requestStates[r.State]}
	},
	json: requestJSON,
}

func cmdPairingList(env *environment) *cobra.Command {
	var all *bool
	c := listCommand(env, "list pairing requests", pairingRequestList,
		func(ctx context.Context, client adminv1.AdminClient) ([]*adminv1.PairingRequest, error) {
			resp, err := client.ListPairingRequests(ctx, &adminv1.ListPairingRequestsRequest{All: *all})
			return resp.GetRequests(), err
		})
	all = c.Flags().Bool("all", false, "include decided and expired requests")
	return c
}

func cmdPairingDecide(env *environment, approve bool) *cobra.Command {
	c := leaf("reject REQUEST_ID", "reject a pairing request", 1, 1)
	if approve {
		c = leaf("approve REQUEST_ID", "approve a pairing request", 1, 1)
	}
	socket := addAdminFlag(c)
	asJSON := c.Flags().Bool("json", false, "print JSON")
	c.RunE = func(c *cobra.Command, pos []string) error {
		ctx := c.Context()
		client, done, err := adminClient(env, *socket)
		if err != nil {
			return err
		}
		defer done()
		req := &adminv1.DecidePairingRequest{RequestId: pos[0]}
		var r *adminv1.PairingRequest
		if approve {
			r, err = client.ApprovePairingRequest(ctx, req)
		} else {
			r, err = client.RejectPairingRequest(ctx, req)
		}
		if err != nil {
			return rpcError(err)
		}
		if *asJSON {
			return writeJSON(env.stdout, requestJSON(r))
		}
		fmt.Fprintf(env.stdout, "%s %s (%s, verification code %s)\n", requestStates[r.State], r.RequestId, printable(r.Name), r.VerificationCode)
		return nil
	}
	return c
}

var nodeList = listFormat[*adminv1.Node]{
	none:   "no nodes",
	header: "DEVICE\tNAME\tPLATFORM\tONLINE\tGATEWAY\tLAST SEEN",
	row: func(n *adminv1.Node) []any {
		gw := printable(n.Gateway)
		if gw == "" {
			gw = "-"
		}
		return []any{n.DeviceId, printable(n.Name), printable(n.Platform), n.Online, gw, unixMs(n.LastSeenUnixMs)}
	},
	json: func(n *adminv1.Node) map[string]any {
		return map[string]any{
			"device_id": n.DeviceId, "name": n.Name, "platform": n.Platform, "online": n.Online,
			"last_seen": unixMs(n.LastSeenUnixMs), "version": n.Version, "gateway": n.Gateway,
		}
	},
}

func cmdNodesList(env *environment) *cobra.Command {
	return listCommand(env, "list nodes and whether they are online", nodeList,
		func(ctx context.Context, client adminv1.AdminClient) ([]*adminv1.Node, error) {
			resp, err := client.ListNodes(ctx, &adminv1.ListNodesRequest{})
			return resp.GetNodes(), err
		})
}

// listCommand is a list command printing what list returns as format says.
func listCommand[T any](env *environment, short string, format listFormat[T],
	list func(context.Context, adminv1.AdminClient) ([]T, error)) *cobra.Command {
	c := leaf("list", short, 0, 0)
	socket := addAdminFlag(c)
	asJSON := c.Flags().Bool("json", false, "print JSON")
	c.RunE = func(c *cobra.Command, _ []string) error {
		client, done, err := adminClient(env, *socket)
		if err != nil {
			return err
		}
		defer done()
		items, err := list(c.Context(), client)
		if err != nil {
			return rpcError(err)
		}
		return format.print(env.stdout, items, *asJSON)
	}
	return c
}

func deviceJSON(d *adminv1.Device) map[string]any {
	return map[string]any{
		"device_id": d.DeviceId, "name": d.Name, "platform": d.Platform, "revoked": d.Revoked,
		"paired_at": unixMs(d.PairedAtUnixMs), "certificate_not_after": unixMs(d.CertificateNotAfterUnixMs),
	}
}

var deviceList = listFormat[*adminv1.Device]{
	none:   "no devices",
	header: "DEVICE\tNAME\tPLATFORM\tREVOKED\tPAIRED",
	row: func(d *adminv1.Device) []any {
		return []any{d.DeviceId, printable(d.Name), printable(d.Platform), d.Revoked, unixMs(d.PairedAtUnixMs)}
	},
	json: deviceJSON,
}

func cmdDevicesList(env *environment) *cobra.Command {
	return listCommand(env, "list paired devices", deviceList,
		func(ctx context.Context, client adminv1.AdminClient) ([]*adminv1.Device, error) {
			resp, err := client.ListDevices(ctx, &adminv1.ListDevicesRequest{})
			return resp.GetDevices(), err
		})
}

func cmdDevicesRevoke(env *environment) *cobra.Command {
	c := leaf("revoke DEVICE", "revoke a device and cut its sessions", 1, 1)
	socket := deviceArg(c, env)
	asJSON := c.Flags().Bool("json", false, "print JSON")
	c.RunE = func(c *cobra.Command, pos []string) error {
		ctx := c.Context()
		client, id, done, err := deviceClient(ctx, env, *socket, pos[0])
		if err != nil {
			return err
		}
		defer done()
		d, err := client.RevokeDevice(ctx, &adminv1.DeviceRequest{DeviceId: id})
		if err != nil {
			return rpcError(err)
		}
		if *asJSON {
			return writeJSON(env.stdout, deviceJSON(d))
		}
		fmt.Fprintf(env.stdout, "revoked %s (%s); its sessions are closed\n", d.DeviceId, printable(d.Name))
		return nil
	}
	return c
}

func cmdDevicesRemove(env *environment) *cobra.Command {
	c := leaf("remove DEVICE", "forget a device (it stays refused)", 1, 1)
	socket := deviceArg(c, env)
	c.RunE = func(c *cobra.Command, pos []string) error {
		ctx := c.Context()
		client, id, done, err := deviceClient(ctx, env, *socket, pos[0])
		if err != nil {
			return err
		}
		defer done()
		if _, err := client.RemoveDevice(ctx, &adminv1.DeviceRequest{DeviceId: id}); err != nil {
			return rpcError(err)
		}
		fmt.Fprintf(env.stdout, "removed %s; it stays refused\n", id)
		return nil
	}
	return c
}
