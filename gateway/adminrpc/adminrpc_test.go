package adminrpc_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/gateway/admin"
	"github.com/palyra/palyra-go/gateway/adminrpc"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testclock"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/internal/unixsock"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

var advertised = []string{"127.0.0.1:7443", "gateway.example:7443"}

const gatewayName = "Test Gateway"

// sessions stands in for the QUIC server's live sessions: it records every
// Disconnect. The store behind the admin API is real.
type sessions struct {
	mu          sync.Mutex
	online      map[identity.DeviceID]bool
	disconnects []disconnect
}

type disconnect struct {
	id     identity.DeviceID
	reason string
}

func (s *sessions) Online(id identity.DeviceID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.online[id]
}

func (s *sessions) Disconnect(id identity.DeviceID, reason string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnects = append(s.disconnects, disconnect{id, reason})
	if s.online[id] {
		delete(s.online, id)
		return 1
	}
	return 0
}

func (s *sessions) setOnline(id identity.DeviceID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.online[id] = true
}

func (s *sessions) recorded() []disconnect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.disconnects)
}

// decisions records the request IDs the admin API reports as decided.
type decisions struct {
	mu  sync.Mutex
	ids []string
}

func (d *decisions) decided(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids = append(d.ids, id)
}

func (d *decisions) recorded() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ids)
}

type harness struct {
	store     *store.Store
	ca        *identity.CA
	clock     *testclock.Clock
	sessions  *sessions
	decisions *decisions
	admin     adminv1.AdminClient
	selectors int
}

// start serves the admin API as the gateway does: the adapter over the Go
// API, gRPC on a 0600 Unix socket, with a real store.
func start(t testing.TB) *harness {
	t.Helper()
	clk := testclock.New()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "gateway.db"), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := identity.NewCA(rand.Reader, gatewayName, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{store: st, ca: ca, clock: clk, sessions: &sessions{online: map[identity.DeviceID]bool{}}, decisions: &decisions{}}
	svc, err := admin.New(admin.Config{
		Store:       st,
		Sessions:    h.sessions,
		Decided:     h.decisions.decided,
		CAPin:       ca.Fingerprint(),
		Addresses:   func() []string { return advertised },
		GatewayName: gatewayName,
		Rand:        rand.Reader,
		Now:         clk.Now,
		Logger:      testlog.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	socket := serve(t, svc)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h.admin = adminv1.NewAdminClient(conn)
	return h
}

// serve serves svc's admin API on a Unix socket until t ends, and returns
// the socket's path.
func serve(t testing.TB, svc *admin.Service) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := unixsock.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.WaitForHandlers(true))
	adminv1.RegisterAdminServer(srv, adminrpc.New(svc))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return socket
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

// request records a confirmed pairing request, as the pairing service does
// after a device proved it knew a code: pending, or approved at once with
// autoApprove.
func (h *harness) request(t *testing.T, name string, autoApprove bool) (store.Request, *identity.DeviceKey) {
	t.Helper()
	key, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return h.requestFor(t, name, autoApprove, key), key
}

// requestFor opens a pairing request for key.
func (h *harness) requestFor(t *testing.T, name string, autoApprove bool, key *identity.DeviceKey) store.Request {
	t.Helper()
	ctx := t.Context()
	now := h.clock.Now()
	sel := fmt.Sprintf("%02d", h.selectors)
	h.selectors++
	code, err := pairing.NewCode(rand.Reader, sel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.CreateCode(ctx, store.Code{
		Selector: sel, Name: name + " code", PINSecret: code.PINSecret, LinkSecret: code.LinkSecret,
		AutoApprove: autoApprove, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	c, err := h.store.BeginAttempt(ctx, sel, now)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := key.CreateCSR(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	grantKey := make([]byte, 32)
	if _, err := rand.Read(grantKey); err != nil {
		t.Fatal(err)
	}
	r, err := h.store.CompletePairing(ctx, c.ID, store.Request{
		DeviceID: key.ID(), PublicKey: key.Public(), Name: name, Platform: "linux/amd64", CSR: csr,
		VerificationCode: "123 456", GrantKey: grantKey, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// device pairs a device all the way: an approved request and an issued
// certificate.
func (h *harness) device(t *testing.T, name string) (store.Device, *identity.DeviceKey) {
	t.Helper()
	r, key := h.request(t, name, true)
	now := h.clock.Now()
	cert, err := h.ca.IssueDeviceCertificate(r.CSR, identity.IssueOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.store.IssueCertificate(t.Context(), r.ID, store.Certificate{
		Serial: fmt.Sprintf("%x", cert.SerialNumber), DeviceID: key.ID(),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw,
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return d, key
}

func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	if _, err := admin.New(admin.Config{}); err == nil {
		t.Fatal("New accepted a configuration without store, sessions, addresses and random source")
	}
}

func TestMintNodePairingCode(t *testing.T) {
	t.Parallel()
	h := start(t)
	now := h.clock.Now()

	for _, tc := range []struct {
		name string
		req  *adminv1.MintNodePairingCodeRequest
		ttl  time.Duration
	}{
		{"default TTL", &adminv1.MintNodePairingCodeRequest{}, admin.DefaultCodeTTL},
		{"own TTL, named, auto-approve", &adminv1.MintNodePairingCodeRequest{TtlMs: 90_000, Name: "rack 4", AutoApprove: true}, 90 * time.Second},
		{"shortest TTL", &adminv1.MintNodePairingCodeRequest{TtlMs: admin.MinCodeTTL.Milliseconds()}, admin.MinCodeTTL},
		{"longest TTL", &adminv1.MintNodePairingCodeRequest{TtlMs: admin.MaxCodeTTL.Milliseconds()}, admin.MaxCodeTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.admin.MintNodePairingCode(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			expires := now.Add(tc.ttl)
			if resp.ExpiresAtUnixMs != expires.UnixMilli() {
				t.Fatalf("expires at %d, want now + %s = %d", resp.ExpiresAtUnixMs, tc.ttl, expires.UnixMilli())
			}
			pin, err := pairing.ParsePIN(resp.Pin)
			if err != nil {
				t.Fatalf("PIN %q does not parse: %v", resp.Pin, err)
			}
			if pin.Selector() != resp.Selector {
				t.Fatalf("PIN selector %s, response says %s", pin.Selector(), resp.Selector)
			}
			link, err := pairing.ParseLink(resp.Link, now)
			if err != nil {
				t.Fatalf("link %q does not parse: %v", resp.Link, err)
			}
			if !slices.Equal(link.Gateways, advertised) || !link.CAPin.Equal(h.ca.Fingerprint()) ||
				link.Selector != resp.Selector || link.Name != gatewayName || !link.Expires.Equal(expires.Truncate(time.Second)) {
				t.Fatalf("link %v: gateways %v, pin ok %t, selector %s, name %q, expires %s",
					link, link.Gateways, link.CAPin.Equal(h.ca.Fingerprint()), link.Selector, link.Name, link.Expires)
			}
			if _, err := pairing.ParseLink(resp.Link, expires.Add(time.Second)); err == nil {
				t.Fatal("the link still parses after the code's expiry")
			}

			// The PIN and the link open the code the store keeps.
			open, err := h.store.ListCodes(t.Context(), false, now)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(open, func(c store.Code) bool { return c.Selector == resp.Selector })
			if i < 0 {
				t.Fatalf("no open code %s in the store", resp.Selector)
			}
			stored, err := h.store.GetCode(t.Context(), open[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			want := &pairing.Code{Selector: stored.Selector, PINSecret: stored.PINSecret, LinkSecret: stored.LinkSecret}
			if !want.PIN().Equal(pin) || !slices.Equal(link.Secret, stored.LinkSecret) {
				t.Fatal("the PIN or link is not the stored code's")
			}
			if stored.Name != tc.req.Name || stored.AutoApprove != tc.req.AutoApprove || !stored.ExpiresAt.Equal(expires) {
				t.Fatalf("stored code: name %q, auto-approve %t, expires %s", stored.Name, stored.AutoApprove, stored.ExpiresAt)
			}
		})
	}

	// Codes open at the same time never share a selector.
	open, err := h.store.ListCodes(t.Context(), false, now)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range open {
		if seen[c.Selector] {
			t.Fatalf("two open codes with selector %s", c.Selector)
		}
		seen[c.Selector] = true
	}
}

func TestMintNodePairingCodeRefusesBadRequests(t *testing.T) {
	t.Parallel()
	h := start(t)
	for name, req := range map[string]*adminv1.MintNodePairingCodeRequest{
		"TTL too short": {TtlMs: (admin.MinCodeTTL - time.Millisecond).Milliseconds()},
		"TTL too long":  {TtlMs: (admin.MaxCodeTTL + time.Millisecond).Milliseconds()},
		"negative TTL":  {TtlMs: -1},
		"name too long": {Name: strings.Repeat("n", pairing.MaxNameLength+1)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.admin.MintNodePairingCode(t.Context(), req)
			wantCode(t, err, codes.InvalidArgument)
		})
	}
	if open, err := h.store.ListCodes(t.Context(), true, h.clock.Now()); err != nil || len(open) != 0 {
		t.Fatalf("refused requests stored codes: %v, %v", open, err)
	}
}

func TestMintNodePairingCodeWhenEverySelectorIsTaken(t *testing.T) {
	t.Parallel()
	h := start(t)
	now := h.clock.Now()
	for i := range 100 {
		sel := fmt.Sprintf("%02d", i)
		code, err := pairing.NewCode(rand.Reader, sel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.CreateCode(t.Context(), store.Code{
			Selector: sel, PINSecret: code.PINSecret, LinkSecret: code.LinkSecret, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := h.admin.MintNodePairingCode(t.Context(), &adminv1.MintNodePairingCodeRequest{})
	wantCode(t, err, codes.ResourceExhausted)
}

func TestPairingRequestDecisions(t *testing.T) {
	t.Parallel()
	h := start(t)
	laptop, laptopKey := h.request(t, "laptop", false)
	h.clock.Advance(time.Second) // listed oldest first
	phone, _ := h.request(t, "phone", false)
	h.request(t, "auto", true) // approved at once: not pending

	list, err := h.admin.ListPairingRequests(t.Context(), &adminv1.ListPairingRequestsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Requests) != 2 || list.Requests[0].RequestId != laptop.ID || list.Requests[1].RequestId != phone.ID {
		t.Fatalf("pending requests %v, want laptop then phone", list.Requests)
	}
	got := list.Requests[0]
	if got.DeviceId != laptopKey.ID().String() || got.Name != "laptop" || got.Platform != "linux/amd64" ||
		got.VerificationCode != "123 456" || got.CodeName != "laptop code" ||
		got.State != adminv1.PairingRequest_STATE_PENDING || got.CreatedAtUnixMs != laptop.CreatedAt.UnixMilli() {
		t.Fatalf("listed request %v does not match the stored %+v", got, laptop)
	}

	approved, err := h.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: laptop.ID})
	if err != nil {
		t.Fatal(err)
	}
	if approved.State != adminv1.PairingRequest_STATE_APPROVED || approved.RequestId != laptop.ID {
		t.Fatalf("approve returned %v", approved)
	}
	rejected, err := h.admin.RejectPairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: phone.ID})
	if err != nil {
		t.Fatal(err)
	}
	if rejected.State != adminv1.PairingRequest_STATE_REJECTED {
		t.Fatalf("reject returned %v", rejected)
	}
	if got := h.decisions.recorded(); !slices.Equal(got, []string{laptop.ID, phone.ID}) {
		t.Fatalf("waiting streams told about %v, want the two decided requests", got)
	}
	for id, want := range map[string]store.RequestState{laptop.ID: store.RequestApproved, phone.ID: store.RequestRejected} {
		if r, err := h.store.GetRequest(t.Context(), id); err != nil || r.State != want {
			t.Fatalf("stored request %s: %s, %v; want %s", id, r.State, err, want)
		}
	}

	list, err = h.admin.ListPairingRequests(t.Context(), &adminv1.ListPairingRequestsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Requests) != 0 {
		t.Fatalf("decided requests still listed as pending: %v", list.Requests)
	}
	all, err := h.admin.ListPairingRequests(t.Context(), &adminv1.ListPairingRequestsRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]adminv1.PairingRequest_State{}
	for _, r := range all.Requests {
		states[r.Name] = r.State
	}
	if want := map[string]adminv1.PairingRequest_State{
		"laptop": adminv1.PairingRequest_STATE_APPROVED,
		"phone":  adminv1.PairingRequest_STATE_REJECTED,
		"auto":   adminv1.PairingRequest_STATE_APPROVED,
	}; len(states) != len(want) || states["laptop"] != want["laptop"] || states["phone"] != want["phone"] || states["auto"] != want["auto"] {
		t.Fatalf("all requests: %v, want %v", states, want)
	}

	// Deciding twice is refused, in either direction, and tells nobody.
	for name, call := range map[string]func() error{
		"approve approved": func() error {
			_, err := h.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: laptop.ID})
			return err
		},
		"reject approved": func() error {
			_, err := h.admin.RejectPairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: laptop.ID})
			return err
		},
		"approve rejected": func() error {
			_, err := h.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: phone.ID})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s: %v, want FailedPrecondition", name, err)
		}
	}
	if r, err := h.store.GetRequest(t.Context(), phone.ID); err != nil || r.State != store.RequestRejected {
		t.Fatalf("a second decision changed the request: %s, %v", r.State, err)
	}

	// Unknown IDs.
	_, err = h.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: "0123456789abcdef0123456789abcdef"})
	wantCode(t, err, codes.NotFound)
	_, err = h.admin.RejectPairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: "no such request"})
	wantCode(t, err, codes.NotFound)

	if got := h.decisions.recorded(); len(got) != 2 {
		t.Fatalf("refused decisions woke waiting streams: %v", got)
	}
}

// A request that expired before anyone decided cannot be decided; the
// device waiting on it is told at once.
func TestDecidingAnExpiredRequest(t *testing.T) {
	t.Parallel()
	h := start(t)
	r, _ := h.request(t, "late", false)
	h.clock.Advance(r.ExpiresAt.Sub(h.clock.Now()))

	_, err := h.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: r.ID})
	wantCode(t, err, codes.FailedPrecondition)
	if got := h.decisions.recorded(); !slices.Equal(got, []string{r.ID}) {
		t.Fatalf("streams told about %v, want the expired request", got)
	}
	_, err = h.admin.RejectPairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: r.ID})
	wantCode(t, err, codes.FailedPrecondition)

	all, err := h.admin.ListPairingRequests(t.Context(), &adminv1.ListPairingRequestsRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Requests) != 1 || all.Requests[0].State != adminv1.PairingRequest_STATE_EXPIRED {
		t.Fatalf("requests: %v, want one expired", all.Requests)
	}
}

// TestApprovingARevokedDevice: a device revoked while its new request
// waits is turned away at once, not left waiting for the request to expire.
func TestApprovingARevokedDevice(t *testing.T) {
	t.Parallel()
	h := start(t)
	d, key := h.device(t, "returning")
	r := h.requestFor(t, "returning", false, key)
	if _, err := h.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: d.ID.String()}); err != nil {
		t.Fatal(err)
	}
	_, err := h.admin.ApprovePairingRequest(t.Context(), &adminv1.DecidePairingRequest{RequestId: r.ID})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "revoked") {
		t.Fatalf("message %q does not say why", status.Convert(err).Message())
	}
	if got := h.decisions.recorded(); !slices.Contains(got, r.ID) {
		t.Fatalf("the waiting device was not told: %v", got)
	}
	all, err := h.admin.ListPairingRequests(t.Context(), &adminv1.ListPairingRequestsRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range all.Requests {
		if q.RequestId == r.ID && q.State != adminv1.PairingRequest_STATE_REJECTED {
			t.Fatalf("request left %v", q.State)
		}
	}
}

func TestListNodesAndDevices(t *testing.T) {
	t.Parallel()
	h := start(t)
	zeta, zetaKey := h.device(t, "zeta")
	h.clock.Advance(time.Second)
	alpha, alphaKey := h.device(t, "alpha")
	h.clock.Advance(time.Second)
	revoked, revokedKey := h.device(t, "gone")
	if _, err := h.store.RevokeDevice(t.Context(), revokedKey.ID(), h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	seen := h.clock.Now()
	for _, n := range []store.Node{
		{DeviceID: zetaKey.ID(), Name: "zeta", Platform: "linux/arm64", Version: "1.2.3", LastSeen: seen},
		{DeviceID: alphaKey.ID(), Name: "alpha", Platform: "darwin/arm64", Version: "1.2.4", LastSeen: seen.Add(-time.Minute)},
	} {
		if err := h.store.UpsertNode(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	h.sessions.setOnline(zetaKey.ID())

	nodes, err := h.admin.ListNodes(t.Context(), &adminv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Nodes) != 2 {
		t.Fatalf("nodes %v, want alpha and zeta", nodes.Nodes)
	}
	a, z := nodes.Nodes[0], nodes.Nodes[1]
	if a.Name != "alpha" || a.DeviceId != alphaKey.ID().String() || a.Online || a.Platform != "darwin/arm64" ||
		a.Version != "1.2.4" || a.LastSeenUnixMs != seen.Add(-time.Minute).UnixMilli() {
		t.Fatalf("first node %v, want alpha, offline", a)
	}
	if z.Name != "zeta" || z.DeviceId != zetaKey.ID().String() || !z.Online || z.LastSeenUnixMs != seen.UnixMilli() {
		t.Fatalf("second node %v, want zeta, online", z)
	}

	devices, err := h.admin.ListDevices(t.Context(), &adminv1.ListDevicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Device{zeta, alpha, revoked} // pairing order
	if len(devices.Devices) != len(want) {
		t.Fatalf("devices %v, want %d", devices.Devices, len(want))
	}
	for i, d := range devices.Devices {
		w := want[i]
		if d.DeviceId != w.ID.String() || d.Name != w.Name || d.Platform != w.Platform ||
			d.PairedAtUnixMs != w.PairedAt.UnixMilli() || d.CertificateNotAfterUnixMs != w.CertificateNotAfter.UnixMilli() ||
			d.Revoked != (w.ID == revokedKey.ID()) {
			t.Fatalf("device %d: %v, want %+v (revoked %t)", i, d, w, w.ID == revokedKey.ID())
		}
	}
}

func TestRevokeDevice(t *testing.T) {
	t.Parallel()
	h := start(t)
	_, key := h.device(t, "laptop")
	_, other := h.device(t, "desktop")
	h.sessions.setOnline(key.ID())

	d, err := h.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: key.ID().String()})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Revoked || d.DeviceId != key.ID().String() {
		t.Fatalf("revoke returned %v", d)
	}
	if got := h.sessions.recorded(); !slices.Equal(got, []disconnect{{key.ID(), "revoked"}}) {
		t.Fatalf("disconnects %v, want the revoked device's", got)
	}
	if h.sessions.Online(key.ID()) {
		t.Fatal("the revoked device is still online")
	}
	if revoked, err := h.store.IsRevoked(t.Context(), key.ID()); err != nil || !revoked {
		t.Fatalf("store: revoked %t, %v", revoked, err)
	}
	devices, err := h.admin.ListDevices(t.Context(), &adminv1.ListDevicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devices.Devices {
		if d.Revoked != (d.DeviceId == key.ID().String()) {
			t.Fatalf("device %s listed with revoked %t", d.Name, d.Revoked)
		}
	}
	if revoked, err := h.store.IsRevoked(t.Context(), other.ID()); err != nil || revoked {
		t.Fatalf("another device got revoked: %t, %v", revoked, err)
	}

	// Revoking again is harmless and still cuts any session.
	if d, err := h.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: key.ID().String()}); err != nil || !d.Revoked {
		t.Fatalf("revoking again: %v, %v", d, err)
	}

	stranger, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: stranger.ID().String()})
	wantCode(t, err, codes.NotFound)
	_, err = h.admin.RevokeDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: "not a device"})
	wantCode(t, err, codes.InvalidArgument)
	if got := h.sessions.recorded(); len(got) != 2 {
		t.Fatalf("refused revocations disconnected someone: %v", got)
	}
}

func TestRemoveDevice(t *testing.T) {
	t.Parallel()
	h := start(t)
	_, key := h.device(t, "laptop")
	_, keep := h.device(t, "desktop")

	if _, err := h.admin.RemoveDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: key.ID().String()}); err != nil {
		t.Fatal(err)
	}
	if got := h.sessions.recorded(); !slices.Equal(got, []disconnect{{key.ID(), "removed"}}) {
		t.Fatalf("disconnects %v, want the removed device's", got)
	}
	devices, err := h.admin.ListDevices(t.Context(), &adminv1.ListDevicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(devices.Devices) != 1 || devices.Devices[0].DeviceId != keep.ID().String() {
		t.Fatalf("devices after removal: %v", devices.Devices)
	}
	// A removed device stays refused.
	if revoked, err := h.store.IsRevoked(t.Context(), key.ID()); err != nil || !revoked {
		t.Fatalf("removed device revoked %t, %v", revoked, err)
	}

	_, err = h.admin.RemoveDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: key.ID().String()})
	wantCode(t, err, codes.NotFound)
	_, err = h.admin.RemoveDevice(t.Context(), &adminv1.DeviceRequest{DeviceId: "not a device"})
	wantCode(t, err, codes.InvalidArgument)
	if got := h.sessions.recorded(); len(got) != 1 {
		t.Fatalf("refused removals disconnected someone: %v", got)
	}
}

// TestStatus: each kind of refusal of the Go API answers with its gRPC
// code and the error's text, so the command line shows what it showed.
func TestStatus(t *testing.T) {
	t.Parallel()
	cause := errors.New("disk on fire")
	for name, tc := range map[string]struct {
		err  error
		code codes.Code
		msg  string
	}{
		"not found":        {&admin.NotFoundError{What: "device", ID: "X"}, codes.NotFound, "no device X"},
		"invalid argument": {&admin.InvalidArgumentError{Argument: "ttl", Err: errors.New("too short")}, codes.InvalidArgument, "too short"},
		"decided":          {&admin.DecisionError{RequestID: "r1", Decision: "approved", Err: admin.ErrAlreadyDecided}, codes.FailedPrecondition, "pairing request r1 is no longer pending: it was decided already"},
		"expired":          {&admin.DecisionError{RequestID: "r1", Decision: "rejected", Err: admin.ErrRequestExpired}, codes.FailedPrecondition, "pairing request r1 expired before it was rejected"},
		"revoked request":  {&admin.DecisionError{RequestID: "r1", Decision: "approved", Err: admin.ErrRevoked}, codes.FailedPrecondition, "the device of pairing request r1 is revoked; the request was rejected"},
		"revoked":          {fmt.Errorf("device X: %w", admin.ErrRevoked), codes.FailedPrecondition, "device X: device revoked"},
		"no link":          {fmt.Errorf("link: %w", admin.ErrCannotLink), codes.FailedPrecondition, "link: cannot build a pairing link"},
		"too many codes":   {fmt.Errorf("codes: %w", admin.ErrTooManyCodes), codes.ResourceExhausted, "codes: too many open pairing codes"},
		"unavailable":      {fmt.Errorf("events: %w", admin.ErrUnavailable), codes.Unavailable, "events: not available on this gateway"},
		"call ended":       {fmt.Errorf("call X: %w", admin.ErrCallEnded), codes.FailedPrecondition, "call X: call already ended"},
		"internal":         {&admin.InternalError{Msg: "listing nodes failed; see the gateway's log", Err: cause}, codes.Internal, "listing nodes failed; see the gateway's log"},
		// An internal failure stays internal whatever its cause.
		"internal, canceled": {&admin.InternalError{Msg: "listing nodes failed; see the gateway's log", Err: context.Canceled}, codes.Internal, "listing nodes failed; see the gateway's log"},
		"canceled":           {context.Canceled, codes.Canceled, "context canceled"},
		"deadline":           {context.DeadlineExceeded, codes.DeadlineExceeded, "context deadline exceeded"},
		"other":              {cause, codes.Unknown, "disk on fire"},
	} {
		st := status.Convert(adminrpc.Status(tc.err))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%s: %s %q, want %s %q", name, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
	if adminrpc.Status(nil) != nil {
		t.Error("no error became a status")
	}
}

// The queued calls over the admin socket: states both ways, the kept
// result, and the refusals' codes. (Waiting and cancelling need the node
// runtime, which the gateway's tests run.)
func TestCalls(t *testing.T) {
	t.Parallel()
	h := start(t)
	d, _ := h.device(t, "queued-for")
	now := h.clock.Now()
	ids := []string{"01KJVKTCGR0000000000000001", "01KJVKTCGR0000000000000002"}
	for _, id := range ids {
		if err := h.store.QueueInvocation(t.Context(), store.Invocation{RequestID: id, DeviceID: d.ID, Capability: "system.info",
			Args: []byte(`{"a":1}`), Caller: "test", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := proto.Marshal(&nodev1.Result{RequestId: ids[1], Ok: false, ErrorCode: "denied", ErrorMessage: "no"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.FinishInvocation(t.Context(), ids[1], res, false, now); err != nil {
		t.Fatal(err)
	}
	list, err := h.admin.ListCalls(t.Context(), &adminv1.ListCallsRequest{States: []adminv1.Call_State{adminv1.Call_STATE_FAILED}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Calls) != 1 || list.Calls[0].RequestId != ids[1] || list.Calls[0].State != adminv1.Call_STATE_FAILED ||
		list.Calls[0].Result.GetErrorCode() != "denied" || list.Calls[0].DeviceId != d.ID.String() || string(list.Calls[0].ArgsJson) != `{"a":1}` {
		t.Fatalf("failed calls: %v", list.Calls)
	}
	c, err := h.admin.GetCall(t.Context(), &adminv1.GetCallRequest{RequestId: strings.ToLower(ids[0])})
	if err != nil || c.State != adminv1.Call_STATE_QUEUED || c.Result != nil || c.FinishedAtUnixMs != 0 {
		t.Fatalf("the queued call: %v, %v", c, err)
	}
	_, err = h.admin.GetCall(t.Context(), &adminv1.GetCallRequest{RequestId: "01KJVKTCGR0000000000000009"})
	wantCode(t, err, codes.NotFound)
	_, err = h.admin.GetCall(t.Context(), &adminv1.GetCallRequest{RequestId: "nope"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = h.admin.ListCalls(t.Context(), &adminv1.ListCallsRequest{States: []adminv1.Call_State{adminv1.Call_STATE_UNSPECIFIED}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = h.admin.CancelCall(t.Context(), &adminv1.CancelCallRequest{RequestId: ids[0]})
	wantCode(t, err, codes.Unavailable)
}
