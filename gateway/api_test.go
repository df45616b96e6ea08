package gateway_test

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/pairclient"
)

// pairPending starts pairing a new agent by a PIN minted with the Go API
// (not auto-approved) and returns it once its request waits, with the
// pairing's result to come.
func pairPending(t *testing.T, rg *runningGateway, name string) (*node.Agent, pairclient.Pending, <-chan error) {
	t.Helper()
	return pairPendingIn(t, rg, t.TempDir(), name)
}

// pairPendingIn is pairPending with the agent in dir.
func pairPendingIn(t *testing.T, rg *runningGateway, dir, name string) (*node.Agent, pairclient.Pending, <-chan error) {
	t.Helper()
	code, err := rg.g.MintPairingCode(t.Context(), gateway.CodeOptions{Name: name + " code"})
	if err != nil {
		t.Fatal(err)
	}
	a := agentIn(t, dir, name)
	pending := make(chan pairclient.Pending, 1)
	paired := make(chan error, 1)
	go func() {
		_, err := a.Pair(t.Context(), node.PairOptions{Gateway: rg.g.Addresses()[0], PIN: code.PIN,
			OnPending: func(p pairclient.Pending) { pending <- p }})
		paired <- err
	}()
	return a, testwait.Recv(t, pending, 20*time.Second, "the pending request of "+name), paired
}

// waitEvent returns the first event from events of the device and kind,
// failing at the deadline.
func waitEvent(t *testing.T, events <-chan gateway.Event, id, kind string) gateway.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e := testwait.Recv(t, events, time.Until(deadline), "a "+kind+" event of "+id)
		if e.DeviceID.String() == id && e.Kind == kind {
			return e
		}
	}
	t.Fatalf("no %s event of %s", kind, id)
	return gateway.Event{}
}

// TestGoAPI administers a gateway in-process, as an embedder does: mint a
// code, see and approve the request, list the device, watch it come
// online, describe and invoke it, revoke and remove it.
func TestGoAPI(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	g := rg.g
	ctx := t.Context()

	minted := time.Now()
	code, err := g.MintPairingCode(ctx, gateway.CodeOptions{Name: "rack 4", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pairing.ParsePIN(code.PIN); err != nil {
		t.Fatalf("PIN %q: %v", code.PIN, err)
	}
	link, err := pairing.ParseLink(code.QRPayload(), minted)
	if err != nil || code.QRPayload() != code.Link {
		t.Fatalf("QR payload %q is not the link %q (%v)", code.QRPayload(), code.Link, err)
	}
	if link.Selector != code.Selector || !slices.Equal(link.Gateways, g.Addresses()) || code.Name != "rack 4" || code.AutoApprove ||
		code.ExpiresAt.Before(minted.Add(time.Hour)) || code.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("code %+v, link %v", code, link)
	}

	watch, err := g.WatchEvents(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	laptop, p, paired := pairPending(t, rg, "laptop")
	reqs, err := g.PairingRequests(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].ID != p.RequestID || reqs[0].VerificationCode != p.VerificationCode ||
		reqs[0].Name != "laptop" || reqs[0].CodeName != "laptop code" || reqs[0].State != gateway.RequestPending ||
		!reqs[0].ExpiresAt.After(reqs[0].CreatedAt) {
		t.Fatalf("pending requests %+v; the device shows %+v", reqs, p)
	}
	approved, err := g.ApprovePairingRequest(ctx, p.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if approved.State != gateway.RequestApproved || approved.ID != p.RequestID {
		t.Fatalf("approve returned %+v", approved)
	}
	if err := testwait.Recv(t, paired, 20*time.Second, "the end of pairing"); err != nil {
		t.Fatal(err)
	}
	id := laptop.Status().DeviceID
	devices, err := g.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(devices) != 1 || devices[0].ID.String() != id || devices[0].Name != "laptop" || devices[0].Revoked() ||
		!devices[0].CertificateNotAfter.After(devices[0].PairedAt) {
		t.Fatalf("devices %+v, want the laptop", devices)
	}

	stop := runAgent(laptop)
	defer func() { stop() }()
	waitEvent(t, watch, id, "online")
	nodes, err := g.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].DeviceID.String() != id || !nodes[0].Online || nodes[0].Transport != "quic" {
		t.Fatalf("nodes %+v, want the laptop online over QUIC", nodes)
	}
	d, err := g.DescribeNode(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(d.Capabilities, func(c gateway.Capability) bool { return c.Name == "system.info" })
	if i < 0 || !d.Capabilities[i].Enabled || d.Capabilities[i].Privacy != gateway.PrivacyLow ||
		d.Capabilities[i].Consent != gateway.ConsentAllow || d.Capabilities[i].ArgsSchema == "" || !d.Node.Online {
		t.Fatalf("described node %+v", d)
	}
	if !slices.ContainsFunc(d.RecentEvents, func(e gateway.Event) bool { return e.Kind == "online" }) {
		t.Fatalf("recent events %+v lack the connection", d.RecentEvents)
	}

	r, err := g.Invoke(ctx, gateway.Invocation{DeviceID: id, Capability: "system.info", Timeout: 10 * time.Second, Caller: "api test"})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal(r.Output, &info); !r.OK || r.Queued || err != nil || len(r.RequestID) != 26 {
		t.Fatalf("system.info: %+v (%v)", r, err)
	}
	if host, _ := os.Hostname(); info.Hostname != host {
		t.Fatalf("system.info says host %q, this is %q", info.Hostname, host)
	}
	e := waitEvent(t, watch, id, "invocation")
	if e.RequestID != r.RequestID || e.Capability != "system.info" {
		t.Fatalf("invocation event %+v, want request %s", e, r.RequestID)
	}

	revoked, err := g.RevokeDevice(ctx, id)
	if err != nil || !revoked.Revoked() {
		t.Fatalf("revoking: %+v, %v", revoked, err)
	}
	waitState(t, laptop, node.StateRevoked)
	// Once the session is gone, the call is refused before it is sent.
	waitEvent(t, watch, id, "offline")
	_, err = g.Invoke(ctx, gateway.Invocation{DeviceID: id, Capability: "system.info"})
	if !errors.Is(err, gateway.ErrRevoked) || err.Error() != "device "+id+" is revoked" {
		t.Fatalf("invoking a revoked device: %v", err)
	}
	if err := g.RemoveDevice(ctx, id); err != nil {
		t.Fatal(err)
	}
	if devices, err := g.Devices(ctx); err != nil || len(devices) != 0 {
		t.Fatalf("devices after removal: %+v, %v", devices, err)
	}
}

// TestGoAPIRefusals: each refusal is an error to test with errors.Is and
// errors.As, saying what was refused, in the words the command line
// shows.
func TestGoAPIRefusals(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	g := rg.g
	ctx := t.Context()
	stranger, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	unknown := stranger.ID().String()

	notFound := func(name string, err error, what, id, msg string) {
		t.Helper()
		var nf *gateway.NotFoundError
		if !errors.Is(err, gateway.ErrNotFound) || !errors.As(err, &nf) || nf.What != what || nf.ID != id || err.Error() != msg {
			t.Errorf("%s: %v (%#v), want no %s %s: %q", name, err, nf, what, id, msg)
		}
	}
	_, err = g.RevokeDevice(ctx, unknown)
	notFound("revoking an unknown device", err, "device", unknown, "no device "+unknown)
	err = g.RemoveDevice(ctx, unknown)
	notFound("removing an unknown device", err, "device", unknown, "no device "+unknown)
	_, err = g.Invoke(ctx, gateway.Invocation{DeviceID: unknown, Capability: "system.info"})
	notFound("invoking an unknown device", err, "device", unknown, "no device "+unknown)
	_, err = g.DescribeNode(ctx, unknown)
	notFound("describing an unknown node", err, "node", unknown, "no node "+unknown+" (it has not connected since pairing, or was removed)")
	_, err = g.ApprovePairingRequest(ctx, "no such request")
	notFound("approving an unknown request", err, "pairing request", "no such request", `no pairing request "no such request"`)
	_, err = g.RejectPairingRequest(ctx, "no such request")
	notFound("rejecting an unknown request", err, "pairing request", "no such request", `no pairing request "no such request"`)

	invalid := func(name string, err error, argument, msg string) {
		t.Helper()
		var ia *gateway.InvalidArgumentError
		if !errors.Is(err, gateway.ErrInvalidArgument) || !errors.As(err, &ia) || ia.Argument != argument || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v (%#v), want argument %s refused with %q", name, err, ia, argument, msg)
		}
	}
	_, err = g.MintPairingCode(ctx, gateway.CodeOptions{TTL: time.Second})
	invalid("a one-second code", err, "ttl", "a code must live between 30s and 24h0m0s, not 1s")
	_, err = g.MintPairingCode(ctx, gateway.CodeOptions{TTL: -time.Minute})
	invalid("a negative TTL", err, "ttl", "not -1m0s")
	_, err = g.MintPairingCode(ctx, gateway.CodeOptions{Name: strings.Repeat("n", pairing.MaxNameLength+1)})
	invalid("a long code name", err, "name", "the code's name is longer than")
	_, err = g.RevokeDevice(ctx, "not a device")
	invalid("revoking a malformed ID", err, "device_id", "")
	err = g.RemoveDevice(ctx, "not a device")
	invalid("removing a malformed ID", err, "device_id", "")
	_, err = g.DescribeNode(ctx, "not a device")
	invalid("describing a malformed ID", err, "device_id", "")
	_, err = g.WatchEvents(ctx, "not a device")
	invalid("watching a malformed ID", err, "device_id", "")
	_, err = g.Invoke(ctx, gateway.Invocation{DeviceID: unknown, Capability: "system.info", QueueTTL: -time.Second})
	invalid("a negative queue TTL", err, "timeout", "timeout and queue TTL must not be negative")
	_, err = g.Invoke(ctx, gateway.Invocation{DeviceID: unknown, Capability: "system.info", Args: json.RawMessage(`[1]`)})
	invalid("arguments that are not an object", err, "args", "arguments must be a JSON object")
	_, err = g.Invoke(ctx, gateway.Invocation{DeviceID: unknown})
	invalid("no capability", err, "capability", "no capability named")

	// Deciding a request twice, either way.
	_, p, paired := pairPending(t, rg, "phone")
	if _, err := g.RejectPairingRequest(ctx, p.RequestID); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Recv(t, paired, 20*time.Second, "the end of pairing"); err == nil {
		t.Fatal("a rejected device paired")
	}
	for name, decide := range map[string]func() (gateway.PairingRequest, error){
		"approving a rejected request": func() (gateway.PairingRequest, error) { return g.ApprovePairingRequest(ctx, p.RequestID) },
		"rejecting a rejected request": func() (gateway.PairingRequest, error) { return g.RejectPairingRequest(ctx, p.RequestID) },
	} {
		_, err := decide()
		var de *gateway.DecisionError
		want := "pairing request " + p.RequestID + " is no longer pending: it was decided already"
		if !errors.Is(err, gateway.ErrAlreadyDecided) || !errors.As(err, &de) || de.RequestID != p.RequestID || err.Error() != want {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
		if errors.Is(err, gateway.ErrNotFound) || errors.Is(err, gateway.ErrInvalidArgument) || errors.Is(err, gateway.ErrInternal) {
			t.Errorf("%s: %v is of more than one kind", name, err)
		}
	}
	if all, err := g.PairingRequests(ctx, true); err != nil || len(all) != 1 || all[0].State != gateway.RequestRejected {
		t.Fatalf("requests after the refused decisions: %+v, %v", all, err)
	}
}
