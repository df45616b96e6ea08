package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/localapi"
)

// storeItemProbe is the item of the secret store doctor writes to prove
// it usable; it is deleted again at once. The certificates doctor checks
// are node's (node.StoredDeviceCertificate, node.StoredPinnedCA).
const storeItemProbe = "doctor-probe"

// defaultExpiredGrace is how long after expiry a gateway accepts a device
// certificate's renewal by challenge, unless configured otherwise (DESIGN:
// "within a grace period (default 30 days)").
const defaultExpiredGrace = 30 * 24 * time.Hour

// Check statuses, as --json writes them.
const (
	statusOK   = "ok"
	statusWarn = "warn"
	statusFail = "fail"
)

// checkResult is one line of doctor's report.
type checkResult struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// doctor runs the checks and collects (or prints) their results.
type doctor struct {
	env     *environment
	nf      nodeFlags
	timeout time.Duration
	json    bool
	results []checkResult
}

// cmdDoctor checks this machine's node: the secret store, the config
// files, the identity and its certificate, each gateway address over TCP and
// UDP, and the local node agent. It prints one line per check (or JSON) and
// exits 1 when any check failed.
func cmdDoctor(env *environment) *cobra.Command {
	c := leaf("doctor", "check this node: keychain, config, certificate, gateway over TCP and UDP", 0, 0)
	fs := c.Flags()
	nf := addNodeFlags(env, fs)
	timeout := fs.Duration("timeout", 3*time.Second, "how long each probe (keychain, TCP, UDP, local node) may take")
	asJSON := fs.Bool("json", false, `print a JSON array of {"check", "status", "detail"}; status is ok, warn or fail`)
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		if *timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		d := &doctor{env: env, nf: nf, timeout: *timeout, json: *asJSON}
		d.run(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}

		var fails, warns int
		for _, r := range d.results {
			switch r.Status {
			case statusFail:
				fails++
			case statusWarn:
				warns++
			}
		}
		if d.json {
			if err := writeJSON(env.stdout, d.results); err != nil {
				return err
			}
		} else {
			switch {
			case fails > 0:
				fmt.Fprintf(env.stdout, "\n%s failed, %s\n", plural(fails, "check"), plural(warns, "warning"))
			case warns > 0:
				fmt.Fprintf(env.stdout, "\nno failures, %s\n", plural(warns, "warning"))
			default:
				fmt.Fprintln(env.stdout, "\nall checks passed")
			}
		}
		if fails > 0 {
			return errSilent
		}
		return nil
	}
	return c
}

// run runs every check in order.
func (d *doctor) run(ctx context.Context) {
	dir, socket := d.nf.paths(d.env)
	store, storeCreated := d.checkSecretStore(dir)
	var conf *node.StoredConfig
	if d.checkConfigDir(dir) {
		conf = d.checkNodeConfig(dir)
		d.checkSharing(dir)
	}
	st, ca, paired := d.checkIdentity(dir, store, storeCreated, conf)
	if paired {
		d.checkGateways(ctx, st.Gateways, ca)
	}
	d.checkLocalNode(ctx, socket, paired)
}

// add records a result and, for people, prints it at once.
func (d *doctor) add(check, status, detail string) {
	d.results = append(d.results, checkResult{Check: check, Status: status, Detail: detail})
	if !d.json {
		label := status
		if status == statusFail {
			label = "FAIL"
		}
		fmt.Fprintf(d.env.stdout, "%-4s  %s: %s\n", label, check, detail)
	}
}

// progress tells a person what is being waited for.
func (d *doctor) progress(format string, args ...any) {
	if !d.json {
		fmt.Fprintf(d.env.stderr, format+"\n", args...)
	}
}

// checkSecretStore opens the chosen store and proves it usable by writing,
// reading and deleting a throwaway item. It returns nil when the store is
// unusable, or (for the file store) not created yet, which created reports
// false; doctor does not create it.
func (d *doctor) checkSecretStore(dir string) (store secretstore.Store, created bool) {
	const check = "secret store"
	kind, profile := *d.nf.secretStore, *d.nf.profile
	switch kind {
	case secretstore.KindKeychain:
		k, err := secretstore.NewKeychain(secretstore.KeychainOptions{Profile: profile, Timeout: d.timeout})
		if err != nil {
			d.add(check, statusFail, err.Error())
			return nil, true
		}
		d.progress("checking the OS keychain…")
		if err := probeStore(k); err != nil {
			d.add(check, statusFail, err.Error())
			return nil, true
		}
		d.add(check, statusOK, fmt.Sprintf("the OS keychain (profile %q) stores, reads and deletes items", profile))
		return k, true
	case secretstore.KindFile:
		secrets := filepath.Join(dir, "secrets")
		exposure := "anything running as you, or as root, can read the device key there; prefer the OS keychain (--secret-store keychain) where there is one"
		if _, err := os.Stat(secrets); errors.Is(err, os.ErrNotExist) {
			d.add(check, statusWarn, fmt.Sprintf("files in %s (--secret-store file), not created yet; %s", secrets, exposure))
			return nil, false
		}
		s, err := secretstore.Open(kind, profile, secrets)
		if err == nil {
			err = probeStore(s)
		}
		if err != nil {
			d.add(check, statusFail, err.Error())
			return nil, true
		}
		d.add(check, statusWarn, fmt.Sprintf("0600 files in %s (--secret-store file) work; %s", secrets, exposure))
		return s, true
	default:
		_, err := secretstore.Open(kind, profile, filepath.Join(dir, "secrets"))
		d.add(check, statusFail, err.Error())
		return nil, true
	}
}

// probeStore writes, reads back and deletes a random throwaway item.
func probeStore(s secretstore.Store) error {
	want := make([]byte, 16)
	_, _ = rand.Read(want)
	if err := s.Set(storeItemProbe, want); err != nil {
		return err
	}
	got, err := s.Get(storeItemProbe)
	delErr := s.Delete(storeItemProbe)
	switch {
	case err != nil:
		return err
	case !bytes.Equal(got, want):
		return fmt.Errorf("the secret store returned something other than what was stored under %q", storeItemProbe)
	}
	return delErr
}

// checkConfigDir checks that the config directory exists and is private.
// It reports whether the directory exists.
func (d *doctor) checkConfigDir(dir string) bool {
	const check = "config dir"
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.add(check, statusWarn, fmt.Sprintf("%s does not exist: not paired (pairing creates it)", dir))
		return false
	case err != nil:
		d.add(check, statusFail, err.Error())
		return false
	case !fi.IsDir():
		d.add(check, statusFail, fmt.Sprintf("%s is not a directory", dir))
		return false
	}
	perm := fi.Mode().Perm()
	if runtime.GOOS != "windows" && perm&0o077 != 0 {
		d.add(check, statusWarn, fmt.Sprintf("%s has mode %#o, so other users can look inside; run: chmod 700 %s", dir, perm, dir))
		return true
	}
	d.add(check, statusOK, dir)
	return true
}

// checkNodeConfig reads the node's configuration; nil means there is none
// to use.
func (d *doctor) checkNodeConfig(dir string) *node.StoredConfig {
	check := node.ConfigFile
	c, err := node.ReadConfig(dir)
	var parseErr *node.ParseError
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.add(check, statusWarn, "not present: not paired; pair with 'palyra node pair'")
		return nil
	case errors.As(err, &parseErr):
		d.add(check, statusFail, fmt.Sprintf("does not parse (%v); the node cannot start: run 'palyra node forget', then pair again", parseErr))
		return nil
	case err != nil:
		d.add(check, statusFail, readFailure(err))
		return nil
	}
	if len(c.Gateways) == 0 {
		d.add(check, statusFail, "names no gateway address; run 'palyra node forget', then pair again")
		return nil
	}
	d.add(check, statusOK, fmt.Sprintf("gateway %q at %s", c.GatewayName, strings.Join(c.Gateways, ", ")))
	return &c
}

// checkSharing checks that the sharing settings, if present, parse.
func (d *doctor) checkSharing(dir string) {
	check := node.SharingFile
	_, err := node.ReadSharing(dir)
	var parseErr *node.ParseError
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.add(check, statusOK, "not present: every capability has its default setting")
	case errors.As(err, &parseErr):
		d.add(check, statusFail, fmt.Sprintf("does not parse (%v); the node refuses to start until %s is fixed or removed", parseErr, parseErr.Path))
	case err != nil:
		d.add(check, statusFail, readFailure(err))
	default:
		d.add(check, statusOK, "parses")
	}
}

// readFailure is what doctor says of a node file it could not read: the
// system's words, which name the file, without node's prefix.
func readFailure(err error) string {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Error()
	}
	return err.Error()
}

// checkIdentity loads the node's identity and checks its certificate. It
// returns the status, the pinned CA (nil if unreadable) and whether the
// node is paired.
func (d *doctor) checkIdentity(dir string, store secretstore.Store, storeCreated bool, conf *node.StoredConfig) (node.Status, *x509.Certificate, bool) {
	const check = "identity"
	if store == nil {
		if !storeCreated {
			d.add(check, statusWarn, "not paired: no device key yet; pair with 'palyra node pair'")
		} else {
			d.add(check, statusFail, "cannot be read: the secret store is not usable (see above)")
		}
		return node.Status{}, nil, false
	}
	a, err := node.New(node.Config{ConfigDir: dir, Secrets: store})
	if err != nil {
		d.add(check, statusFail, err.Error())
		return node.Status{}, nil, false
	}
	st := a.Status()
	if !a.Paired() {
		switch {
		case conf != nil:
			d.add(check, statusFail, fmt.Sprintf("%s names gateway %q, but the secret store (%s, profile %q) holds no device certificate: was this node paired with another --secret-store or --profile? If not, run 'palyra node forget' and pair again",
				node.ConfigFile, conf.GatewayName, *d.nf.secretStore, *d.nf.profile))
		case st.DeviceID != "":
			d.add(check, statusWarn, fmt.Sprintf("not paired; device key %s is kept, so pairing again keeps this device ID", st.DeviceID))
		default:
			d.add(check, statusWarn, "not paired: no device key yet; pair with 'palyra node pair'")
		}
		return st, nil, false
	}
	d.add(check, statusOK, fmt.Sprintf("device %s (%s), paired with %q", st.DeviceID, st.DeviceName, st.GatewayName))
	ca := d.checkCertificate(store, st)
	return st, ca, true
}

// checkCertificate verifies the stored device certificate against the
// pinned CA and checks how long it has left. It returns the pinned CA, or
// nil if it cannot be read.
func (d *doctor) checkCertificate(store secretstore.Store, st node.Status) *x509.Certificate {
	const check = "certificate"
	ca, err := node.StoredPinnedCA(store)
	if err != nil {
		d.add(check, statusFail, fmt.Sprintf("reading the pinned gateway CA: %v", err))
		return nil
	}
	leaf, err := node.StoredDeviceCertificate(store)
	if err != nil {
		d.add(check, statusFail, fmt.Sprintf("reading the device certificate: %v", err))
		return ca
	}
	now := time.Now()
	// Verify the chain as of a moment the certificate was valid, so an
	// expired one is told apart from a broken one.
	id, err := identity.VerifyDeviceCertificate(ca, [][]byte{leaf.Raw}, minTime(now, leaf.NotAfter))
	switch {
	case err != nil:
		d.add(check, statusFail, fmt.Sprintf("%v; run 'palyra node forget' and pair again", err))
		return ca
	case id.String() != st.DeviceID:
		d.add(check, statusFail, fmt.Sprintf("the certificate is for device %s, but the device key is %s's; run 'palyra node forget' and pair again", id, st.DeviceID))
		return ca
	}
	life, left := leaf.NotAfter.Sub(leaf.NotBefore), leaf.NotAfter.Sub(now)
	switch {
	case left <= -defaultExpiredGrace:
		d.add(check, statusFail, fmt.Sprintf("expired %s ago (%s), longer than a gateway's default grace period of %s for renewing it; pair again",
			roughly(-left), formatTime(leaf.NotAfter), roughly(defaultExpiredGrace)))
	case left <= 0:
		d.add(check, statusWarn, fmt.Sprintf("expired %s ago (%s); the node renews it with the device key when it next connects ('palyra node run'), if within the gateway's grace period (default %s)",
			roughly(-left), formatTime(leaf.NotAfter), roughly(defaultExpiredGrace)))
	case left < life/3:
		d.add(check, statusWarn, fmt.Sprintf("expires in %s (%s), with less than a third of its %s lifetime left; a connected node renews it at about two thirds — is 'palyra node run' running and connected?",
			roughly(left), formatTime(leaf.NotAfter), roughly(life)))
	default:
		d.add(check, statusOK, fmt.Sprintf("valid until %s (%s left), issued by the pinned gateway CA %q", formatTime(leaf.NotAfter), roughly(left), ca.Subject.CommonName))
	}
	return ca
}

// checkGateways probes every gateway address over TCP (TLS, as pairing and
// the gRPC fallback use it) and UDP (QUIC, the node's session), all at once.
func (d *doctor) checkGateways(ctx context.Context, addrs []string, ca *x509.Certificate) {
	if len(addrs) == 0 {
		d.add("gateway", statusFail, "no gateway address is stored; run 'palyra node forget' and pair again")
		return
	}
	d.progress("probing %s over TCP and UDP (at most %s)…", plural(len(addrs), "gateway address"), d.timeout)
	results := make([]checkResult, 2*len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() { results[2*i] = d.probeTCP(ctx, addr, ca) })
		wg.Go(func() { results[2*i+1] = d.probeUDP(ctx, addr, ca) })
	}
	wg.Wait()
	for _, r := range results {
		d.add(r.Check, r.Status, r.Detail)
	}
}

// probeTCP completes a TLS handshake with the gateway's TCP port.
func (d *doctor) probeTCP(ctx context.Context, addr string, ca *x509.Certificate) checkResult {
	res := checkResult{Check: "gateway " + addr + " over TCP"}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		res.Status, res.Detail = statusFail, fmt.Sprintf("not a HOST:PORT address: %v", err)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var seen atomic.Pointer[x509.Certificate]
	// The gRPC server behind the port negotiates h2.
	dialer := &tls.Dialer{Config: node.PinnedTLSConfig(host, ca, "h2", seen.Store)}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		res.Status, res.Detail = statusFail, describeProbeError(err, "TCP", port, d.timeout)
		return res
	}
	conn.Close()
	if ca == nil {
		res.Status, res.Detail = statusWarn, "TLS handshake completed, but with no pinned CA to check the gateway against: "+describeCert(seen.Load())
		return res
	}
	res.Status, res.Detail = statusOK, "TLS handshake completed; the gateway's certificate verified against the pinned CA ("+describeCert(seen.Load())+")"
	return res
}

// TLS alerts (as QUIC CRYPTO_ERROR codes, 0x100 + alert) that mean the
// gateway wanted a client certificate the probe did not send.
const (
	cryptoErrorBase               = 0x100
	alertBadCertificate           = 42
	alertCertificateRequired      = 116
	alertNoApplicationProtocol    = 120
	quicCertificateRequired       = cryptoErrorBase + alertCertificateRequired
	quicBadCertificate            = cryptoErrorBase + alertBadCertificate
	quicNoApplicationProtocolCode = cryptoErrorBase + alertNoApplicationProtocol
)

// probeUDP makes a QUIC handshake with the gateway's UDP port, with the
// node protocol's ALPN but without a device certificate: the probe must not
// use the device key, nor open a session that could disturb a running
// node's. A gateway refusing the handshake for want of a client
// certificate has answered, which is what the probe wants to know.
func (d *doctor) probeUDP(ctx context.Context, addr string, ca *x509.Certificate) checkResult {
	res := checkResult{Check: "gateway " + addr + " over UDP"}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		res.Status, res.Detail = statusFail, fmt.Sprintf("not a HOST:PORT address: %v", err)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var seen atomic.Pointer[x509.Certificate]
	conn, err := quic.DialAddr(ctx, addr, node.PinnedTLSConfig(host, ca, wire.ALPN, seen.Store), &quic.Config{HandshakeIdleTimeout: d.timeout})
	if err == nil {
		// With TLS 1.3 the client finishes its handshake before the
		// gateway has looked at the (missing) certificate; the refusal
		// follows as the connection's close.
		select {
		case <-conn.Context().Done():
			err = context.Cause(conn.Context())
		case <-ctx.Done():
			_ = conn.CloseWithError(wire.CodeNoError, "palyra doctor probe")
			res.Status, res.Detail = statusWarn, fmt.Sprintf("QUIC handshake completed, but the gateway did not ask for a device certificate within %s, as a Palyra gateway does", d.timeout)
			return res
		}
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.Remote {
		switch te.ErrorCode {
		case quicCertificateRequired, quicBadCertificate:
			verified := "its certificate verified against the pinned CA"
			if ca == nil {
				verified = "no pinned CA to check its certificate against (" + describeCert(seen.Load()) + ")"
			}
			res.Status, res.Detail = statusOK, fmt.Sprintf("the gateway answered over QUIC (%s) and asked for the device certificate, which this probe does not send; %s", wire.ALPN, verified)
			if ca == nil {
				res.Status = statusWarn
			}
			return res
		case quicNoApplicationProtocolCode:
			res.Status, res.Detail = statusFail, fmt.Sprintf("a QUIC server answered, but does not speak %s: is this the right address?", wire.ALPN)
			return res
		}
	}
	res.Status, res.Detail = statusFail, describeProbeError(err, "UDP", port, d.timeout)
	return res
}

// describeProbeError says in a person's words why a probe failed.
func describeProbeError(err error, proto, port string, timeout time.Duration) string {
	var hte *quic.HandshakeTimeoutError
	var ite *quic.IdleTimeoutError
	var ne net.Error
	switch {
	case errors.Is(err, identity.ErrUntrusted), errors.Is(err, identity.ErrExpired), errors.Is(err, identity.ErrNotServerCertificate):
		return fmt.Sprintf("the gateway's certificate does not match the CA pinned when pairing (%v); if the gateway was set up anew, pair again — otherwise something else answers at this address", err)
	case proto == "UDP" && (errors.As(err, &hte) || errors.As(err, &ite) || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Sprintf("no answer over UDP (QUIC) within %s; is the gateway running? Networks that block UDP port %s need the gRPC fallback over TCP", timeout, port)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer over %s within %s; is the gateway running, and does the network let %s port %s through?", proto, timeout, proto, port)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection refused: nothing listens on %s port %s; is the gateway running?", proto, port)
	}
	return err.Error()
}

func describeCert(c *x509.Certificate) string {
	if c == nil {
		return "no certificate seen"
	}
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	return fmt.Sprintf("for %s, issued by %q, valid until %s", strings.Join(names, ", "), c.Issuer.CommonName, formatTime(c.NotAfter))
}

// checkLocalNode asks the local node agent, if one runs, for its state.
func (d *doctor) checkLocalNode(ctx context.Context, socket string, paired bool) {
	const check = "local node"
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	st, err := localapi.Status(ctx, socket)
	switch {
	case errors.Is(err, localapi.ErrNotRunning):
		if paired {
			d.add(check, statusWarn, fmt.Sprintf("not running (nothing answers on %s); start it with 'palyra node run'", socket))
		} else {
			d.add(check, statusOK, "not running (nothing to run until this machine is paired)")
		}
		return
	case err != nil:
		d.add(check, statusFail, fmt.Sprintf("the node agent on %s: %v", socket, err))
		return
	}
	switch st.State {
	case node.StateConnected:
		d.add(check, statusOK, fmt.Sprintf("running, %s since %s", describe(st), formatTime(st.ConnectedSince)))
	case node.StateRevoked:
		d.add(check, statusFail, "running, but "+describe(st))
	case node.StateConnecting:
		detail := "running, connecting to the gateway"
		if st.LastError != "" {
			detail += " (last error: " + st.LastError + ")"
		}
		d.add(check, statusWarn, detail)
	default:
		d.add(check, statusWarn, "running, "+describe(st))
	}
}

// roughly formats a duration for people: days past two days, else hours and
// minutes, else seconds.
func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= time.Hour:
		d = d.Round(time.Minute)
	default:
		d = d.Round(time.Second)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

func formatTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04 MST") }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
