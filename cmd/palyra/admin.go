package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/identity/pairing/qr"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// adminClient connects to the gateway's admin socket. The socket's file
// mode is the access control, so the connection itself needs no TLS.
func adminClient(env *environment, flagValue string) (adminv1.AdminClient, func(), error) {
	path := adminSocket(env, flagValue)
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("no gateway admin socket at %s (is the gateway running? set --admin-socket or PALYRA_ADMIN_SOCKET)", path)
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the admin socket %s: %w", path, err)
	}
	return adminv1.NewAdminClient(conn), func() { conn.Close() }, nil
}

// adminSetup parses an admin command's flags and connects to the gateway
// at the socket flag's value (read once the flags are parsed).
func adminSetup(env *environment, fs *flag.FlagSet, socket *string, args []string, want int) ([]string, adminv1.AdminClient, func(), error) {
	pos, err := parse(fs, args, want)
	if err != nil {
		return nil, nil, nil, err
	}
	client, done, err := adminClient(env, *socket)
	if err != nil {
		return nil, nil, nil, err
	}
	return pos, client, done, nil
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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func unixMs(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func cmdPairingCode(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "pairing code", "[flags]")
	socket := fs.String("admin-socket", "", "gateway admin socket")
	ttl := fs.Duration("ttl", 10*time.Minute, "how long the code stays valid (30s to 24h)")
	auto := fs.Bool("auto-approve", false, "issue the certificate without waiting for approval")
	name := fs.String("name", "", "a name for the code, shown with the request it produces")
	png := fs.String("qr-png", "", "also write the QR code to this PNG file")
	asJSON := fs.Bool("json", false, "print JSON (keys pin, link, expires_at)")
	_, client, done, err := adminSetup(env, fs, socket, args, 0)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.MintNodePairingCode(ctx, &adminv1.MintNodePairingCodeRequest{TtlMs: ttl.Milliseconds(), AutoApprove: *auto, Name: *name})
	if err != nil {
		return rpcError(err)
	}
	if *png != "" {
		img, err := qr.PNG(resp.Link, qr.DefaultPNGSize)
		if err != nil {
			return err
		}
		// The QR code carries the code's secret: keep the file private.
		if err := os.WriteFile(*png, img, 0o600); err != nil {
			return fmt.Errorf("writing QR code: %w", err)
		}
	}
	if *asJSON {
		return writeJSON(env.stdout, map[string]any{"pin": resp.Pin, "link": resp.Link, "expires_at": unixMs(resp.ExpiresAtUnixMs)})
	}
	text, err := qr.Terminal(resp.Link)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s\nPIN:     %s\nLink:    %s\nExpires: %s\n", text, resp.Pin, resp.Link, unixMs(resp.ExpiresAtUnixMs))
	if *png != "" {
		fmt.Fprintf(env.stdout, "QR code: %s\n", *png)
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

func cmdPairingList(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "pairing list", "[flags]")
	socket := fs.String("admin-socket", "", "gateway admin socket")
	all := fs.Bool("all", false, "include decided and expired requests")
	asJSON := fs.Bool("json", false, "print JSON")
	_, client, done, err := adminSetup(env, fs, socket, args, 0)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.ListPairingRequests(ctx, &adminv1.ListPairingRequestsRequest{All: *all})
	if err != nil {
		return rpcError(err)
	}
	if *asJSON {
		out := []map[string]any{}
		for _, r := range resp.Requests {
			out = append(out, requestJSON(r))
		}
		return writeJSON(env.stdout, out)
	}
	if len(resp.Requests) == 0 {
		fmt.Fprintln(env.stdout, "no pairing requests")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tNAME\tPLATFORM\tVERIFICATION\tSTATE")
	for _, r := range resp.Requests {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.RequestId, printable(r.Name), printable(r.Platform), r.VerificationCode, requestStates[r.State])
	}
	return tw.Flush()
}

func cmdPairingDecide(approve bool) func(context.Context, *environment, []string) error {
	verb := "reject"
	if approve {
		verb = "approve"
	}
	return func(ctx context.Context, env *environment, args []string) error {
		fs := newFlags(env, "pairing "+verb, "REQUEST_ID [flags]")
		socket := fs.String("admin-socket", "", "gateway admin socket")
		asJSON := fs.Bool("json", false, "print JSON")
		pos, client, done, err := adminSetup(env, fs, socket, args, 1)
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
}

func cmdNodesList(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "nodes list", "[flags]")
	socket := fs.String("admin-socket", "", "gateway admin socket")
	asJSON := fs.Bool("json", false, "print JSON")
	_, client, done, err := adminSetup(env, fs, socket, args, 0)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.ListNodes(ctx, &adminv1.ListNodesRequest{})
	if err != nil {
		return rpcError(err)
	}
	if *asJSON {
		out := []map[string]any{}
		for _, n := range resp.Nodes {
			out = append(out, map[string]any{
				"device_id": n.DeviceId, "name": n.Name, "platform": n.Platform, "online": n.Online,
				"last_seen": unixMs(n.LastSeenUnixMs), "version": n.Version,
			})
		}
		return writeJSON(env.stdout, out)
	}
	if len(resp.Nodes) == 0 {
		fmt.Fprintln(env.stdout, "no nodes")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAME\tPLATFORM\tONLINE\tLAST SEEN")
	for _, n := range resp.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", n.DeviceId, printable(n.Name), printable(n.Platform), n.Online, unixMs(n.LastSeenUnixMs))
	}
	return tw.Flush()
}

func deviceJSON(d *adminv1.Device) map[string]any {
	return map[string]any{
		"device_id": d.DeviceId, "name": d.Name, "platform": d.Platform, "revoked": d.Revoked,
		"paired_at": unixMs(d.PairedAtUnixMs), "certificate_not_after": unixMs(d.CertificateNotAfterUnixMs),
	}
}

func cmdDevicesList(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "devices list", "[flags]")
	socket := fs.String("admin-socket", "", "gateway admin socket")
	asJSON := fs.Bool("json", false, "print JSON")
	_, client, done, err := adminSetup(env, fs, socket, args, 0)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.ListDevices(ctx, &adminv1.ListDevicesRequest{})
	if err != nil {
		return rpcError(err)
	}
	if *asJSON {
		out := []map[string]any{}
		for _, d := range resp.Devices {
			out = append(out, deviceJSON(d))
		}
		return writeJSON(env.stdout, out)
	}
	if len(resp.Devices) == 0 {
		fmt.Fprintln(env.stdout, "no devices")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAME\tPLATFORM\tREVOKED\tPAIRED")
	for _, d := range resp.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", d.DeviceId, printable(d.Name), printable(d.Platform), d.Revoked, unixMs(d.PairedAtUnixMs))
	}
	return tw.Flush()
}

func cmdDevicesRevoke(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "devices revoke", "DEVICE_ID [flags]")
	socket := fs.String("admin-socket", "", "gateway admin socket")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, client, done, err := adminSetup(env, fs, socket, args, 1)
	if err != nil {
		return err
	}
	defer done()
	d, err := client.RevokeDevice(ctx, &adminv1.DeviceRequest{DeviceId: pos[0]})
	if err != nil {
		return rpcError(err)
	}
	if *asJSON {
		return writeJSON(env.stdout, deviceJSON(d))
	}
	fmt.Fprintf(env.stdout, "revoked %s (%s); its sessions are closed\n", d.DeviceId, printable(d.Name))
	return nil
}

func cmdDevicesRemove(ctx context.Context, env *environment, args []string) error {
	fs := newFlags(env, "devices remove", "DEVICE_ID [flags]")
	socket := fs.String("admin-socket", "", "gateway admin socket")
	pos, client, done, err := adminSetup(env, fs, socket, args, 1)
	if err != nil {
		return err
	}
	defer done()
	if _, err := client.RemoveDevice(ctx, &adminv1.DeviceRequest{DeviceId: pos[0]}); err != nil {
		return rpcError(err)
	}
	fmt.Fprintf(env.stdout, "removed %s; it stays refused\n", pos[0])
	return nil
}
