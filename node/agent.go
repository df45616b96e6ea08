// Package node is the Palyra node agent, with no GUI: it keeps the device's
// identity in the secret store, pairs with a gateway, and keeps one QUIC
// session to it up, reconnecting with backoff. The `palyra node` commands and
// the desktop app both drive the same Agent: they read Status, Watch for
// changes, and call its verbs (Pair, Forget). It must not import any GUI
// package.
package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/dirlock"
	"github.com/palyra/palyra-go/internal/version"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
	"github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/netwatch"
	"github.com/palyra/palyra-go/node/pairclient"
	"github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Names of the items in the secret store.
const (
	itemKey  = "device-key"
	itemCert = "device-cert"
	itemCA   = "gateway-ca"
)

// State is where the agent stands with its gateway.
type State string

// The states a node goes through.
const (
	StateUnpaired   State = "unpaired"
	StatePairing    State = "pairing"
	StatePending    State = "pending"
	StateConnecting State = "connecting"
	StateConnected  State = "connected"
	StateOffline    State = "offline"
	StateRevoked    State = "revoked"
)

// Status is a snapshot of the agent, for display and for scripts.
type Status struct {
	State               State     `json:"state"`
	DeviceID            string    `json:"device_id,omitempty"`
	DeviceName          string    `json:"device_name,omitempty"`
	GatewayName         string    `json:"gateway_name,omitempty"`
	Gateways            []string  `json:"gateways,omitempty"`
	VerificationCode    string    `json:"verification_code,omitempty"`
	RetryAt             time.Time `json:"retry_at,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	CertificateNotAfter time.Time `json:"certificate_not_after,omitzero"`
	ConnectedSince      time.Time `json:"connected_since,omitzero"`
	// Transport is how the session reaches the gateway: "quic", or "grpc"
	// when QUIC failed (UDP blocked) and the node fell back to TCP.
	Transport string `json:"transport,omitempty"`
	// FallbackReason says in a few words why the session is not over
	// QUIC when Transport is "grpc".
	FallbackReason string `json:"fallback_reason,omitempty"`
	// PairingRequestID and PairingExpiresAt describe a pairing request that
	// waits for approval (State pending), kept across restarts.
	PairingRequestID string    `json:"pairing_request_id,omitempty"`
	PairingExpiresAt time.Time `json:"pairing_expires_at,omitzero"`
	// RevokedAt is when the node learnt the gateway revoked it (State
	// revoked), kept until the owner forgets the gateway or pairs again.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// FallbackError is QUIC's failure in full, for the log and scripts.
	FallbackError string `json:"fallback_error,omitempty"`
}

// OverTCP reports whether the session fell back to gRPC over TCP.
func (s Status) OverTCP() bool { return s.Transport == wire.TransportGRPC }

// Config describes the agent.
type Config struct {
	// ConfigDir holds node.json (gateway addresses and names, nothing secret).
	ConfigDir string
	Secrets   secretstore.Store
	// Name is the device name shown to the gateway; default: host name.
	Name     string
	Platform string
	Logger   *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
	// Asker asks the owner for consent (the desktop app's prompts). nil,
	// as on a headless node, means capabilities that ask are denied: the
	// owner allows them in the sharing settings instead.
	Asker capability.Asker
	// Capabilities replaces the built-in capabilities (for tests and
	// embedders); nil means builtin.All.
	Capabilities []capability.Capability
	// NetworkEvents reports wake and network changes until ctx ends, on
	// which Run redials at once; nil means netwatch.Watch.
	NetworkEvents func(ctx context.Context) <-chan netwatch.Event
	// QUICProbeInterval is how often a node connected over gRPC tries
	// QUIC again, with jitter; zero means DefaultQUICProbeInterval.
	QUICProbeInterval time.Duration
	// QUICTransport, if set, is the UDP socket the agent's QUIC sessions
	// use, shared with other agents in the process; the embedder closes it
	// once their Runs have returned (closing it ends their sessions
	// abruptly). nil: each dial opens a socket of its own.
	QUICTransport *quiccarrier.Transport
}

// Agent is one node.
type Agent struct {
	cfg Config
	// nameGiven is set when the caller named the device; otherwise the name
	// it paired with is kept.
	nameGiven bool

	// confMu is held while ConfigFile is written or removed, so that
	// what one writer read is not lost to another's write, nor a removed
	// file written again.
	confMu sync.Mutex

	mu sync.Mutex
	// The fields below are guarded by mu.
	status   Status
	key      *identity.DeviceKey
	cert     *tls.Certificate
	ca       *x509.Certificate
	conf     StoredConfig
	watchers map[chan Status]struct{}
	sharing  Sharing
	// conn is the registered session, while there is one.
	conn carrier.Conn
	// certFrom and certUntil are cert's validity: the certificate itself
	// is kept only as DER, which is all TLS needs of it.
	certFrom, certUntil time.Time

	caps    *capability.Registry
	calls   calls
	journal *callJournal
	// capsVersion counts manifest changes, so a session learns of one made
	// while it was being set up.
	capsVersion int
	// carriers dials the gateway.
	carriers carriers
	// netEvents are the wake and network-change events of the running
	// Run, which its sessions watch; guarded by mu.
	netEvents <-chan netwatch.Event
}

// New loads the agent's identity and configuration, if any.
func New(cfg Config) (*Agent, error) {
	if cfg.Secrets == nil || cfg.ConfigDir == "" {
		return nil, errors.New("node agent: a secret store and a config directory are required")
	}
	explicitName := cfg.Name != ""
	if !explicitName {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.Platform == "" {
		cfg.Platform = runtime.GOOS + "/" + runtime.GOARCH
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.NetworkEvents == nil {
		cfg.NetworkEvents = func(ctx context.Context) <-chan netwatch.Event { return netwatch.Watch(ctx, cfg.Logger) }
	}
	a := &Agent{cfg: cfg, nameGiven: explicitName, watchers: map[chan Status]struct{}{}, journal: newCallJournal(cfg.ConfigDir), carriers: realCarriers}
	if tr := cfg.QUICTransport; tr != nil {
		a.carriers.quic = func(ctx context.Context, c carrier.Config) (carrier.Conn, error) { return tr.Dial(ctx, c) }
	}
	if err := a.load(); err != nil {
		return nil, err
	}
	if err := a.loadSharing(); err != nil {
		return nil, err
	}
	caps := cfg.Capabilities
	if caps == nil {
		caps = builtin.All(a.builtinConfig)
	}
	var err error
	a.caps, err = capability.NewRegistry(caps, capability.Options{
		Settings: a.sharing.Settings,
		Save:     a.saveCapabilitySettings,
		Asker:    cfg.Asker,
		OnChange: a.capabilitiesChanged,
		Logger:   cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("setting up capabilities: %w", err)
	}
	return a, nil
}

// load reads the identity; a node without a certificate is unpaired.
func (a *Agent) load() error {
	a.status = Status{State: StateUnpaired, DeviceName: a.cfg.Name}
	keyPEM, err := a.cfg.Secrets.Get(itemKey)
	if errors.Is(err, secretstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the device key: %w", err)
	}
	if a.key, err = identity.ParseDeviceKeyPEM(keyPEM); err != nil {
		return fmt.Errorf("reading the device key: %w", err)
	}
	a.status.DeviceID = a.key.ID().String()
	certPEM, err := a.cfg.Secrets.Get(itemCert)
	if errors.Is(err, secretstore.ErrNotFound) {
		return a.loadPending()
	}
	if err != nil {
		return fmt.Errorf("reading the device certificate: %w", err)
	}
	caPEM, err := a.cfg.Secrets.Get(itemCA)
	if err != nil {
		return fmt.Errorf("reading the gateway CA certificate: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("reading the device certificate: %w", err)
	}
	caDER, err := pemCertificate(caPEM)
	if err == nil {
		a.ca, err = sharedCA(caDER)
	}
	if err != nil {
		return fmt.Errorf("reading the gateway CA certificate: %w", err)
	}
	a.setCertificate(cert)
	if a.conf, err = ReadConfig(a.cfg.ConfigDir); err != nil {
		return err
	}
	a.status.State = StateOffline
	a.status.GatewayName = a.conf.GatewayName
	a.status.Gateways = a.conf.Gateways
	a.status.CertificateNotAfter = cert.NotAfter
	if a.conf.DeviceName != "" && !a.nameGiven {
		a.status.DeviceName = a.conf.DeviceName
	}
	if !a.conf.RevokedAt.IsZero() {
		a.status.State, a.status.RevokedAt, a.status.LastError = StateRevoked, a.conf.RevokedAt, revokedMessage(a.conf.RevokedAt)
	}
	return nil
}

// Status returns the current snapshot.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Paired reports whether the agent holds a certificate.
func (a *Agent) Paired() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cert != nil
}

// Watch delivers the current status at once, then every change, until ctx
// ends, when the channel is closed. A slow reader misses intermediate
// states, never the latest.
func (a *Agent) Watch(ctx context.Context) <-chan Status {
	ch := make(chan Status, 1)
	a.mu.Lock()
	ch <- a.status
	a.watchers[ch] = struct{}{}
	a.mu.Unlock()
	go func() {
		<-ctx.Done()
		a.mu.Lock()
		delete(a.watchers, ch)
		close(ch) // under mu, so update never sends on a closed channel
		a.mu.Unlock()
	}()
	return ch
}

// update changes the status under the lock and tells the watchers.
func (a *Agent) update(change func(*Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	change(&a.status)
	for ch := range a.watchers {
		select {
		case <-ch: // drop the stale one
		default:
		}
		ch <- a.status
	}
}

// PairOptions say how to pair: a PIN with a gateway address, or a link;
// neither collects the answer to the pending request, if there is one.
type PairOptions struct {
	Gateway string
	PIN     string
	Link    string
	// OnPending is called when the request waits for an admin, with the
	// verification code to compare.
	OnPending func(pairclient.Pending)
}

// Pair pairs the device with a gateway and stores the result. The device key
// is created on first use and kept across pairings. A request that waits
// for approval is kept when ctx ends or the gateway cannot be reached, so
// Pair without a credential (or Run) collects the answer later.
func (a *Agent) Pair(ctx context.Context, opts PairOptions) (Status, error) {
	var cred pairing.Credential
	var addresses []string
	switch {
	case opts.PIN == "" && opts.Link == "" && a.HasPendingPairing():
		return a.pairResumed(ctx, opts)
	case opts.Link != "" && opts.PIN == "":
		l, err := pairing.ParseLink(opts.Link, a.cfg.Now())
		if err != nil {
			return a.Status(), err
		}
		cred, addresses = l, l.Gateways
		if opts.Gateway != "" {
			addresses = []string{opts.Gateway}
		}
	case opts.PIN != "" && opts.Link == "":
		if opts.Gateway == "" {
			return a.Status(), errors.New("pairing with a PIN needs the gateway's address (HOST:PORT)")
		}
		pin, err := pairing.ParsePIN(opts.PIN)
		if err != nil {
			return a.Status(), err
		}
		cred, addresses = pin, []string{opts.Gateway}
	default:
		return a.Status(), errors.New("pair with either a PIN (and gateway address) or a pairing link")
	}
	key, err := a.deviceKey()
	if err != nil {
		return a.Status(), err
	}
	a.update(func(s *Status) { s.State, s.LastError, s.VerificationCode = StatePairing, "", "" })

	var res *pairing.Result
	for _, addr := range addresses {
		res, err = pairclient.Pair(ctx, pairclient.Options{
			Address: addr, Credential: cred, Key: key, Name: a.cfg.Name, Platform: a.cfg.Platform,
			Rand: a.cfg.Rand, Now: a.cfg.Now,
			OnPending: func(p pairclient.Pending) {
				// Kept before the status says pending: whoever sees
				// "pending" and quits can collect the answer later.
				if err := a.savePending(p); err != nil {
					a.cfg.Logger.Error("keeping the pending pairing request", "err", err)
				}
				a.update(func(s *Status) { s.State, s.VerificationCode = StatePending, p.VerificationCode })
				if opts.OnPending != nil {
					opts.OnPending(p)
				}
			},
		})
		// Only an unreachable address is worth trying the next one for; any
		// other answer came from the gateway itself.
		if err == nil || !errors.Is(err, pairclient.ErrUnreachable) {
			break
		}
	}
	return a.pairEnded(res, err)
}

// pairResumed collects the answer to the pending request.
func (a *Agent) pairResumed(ctx context.Context, opts PairOptions) (Status, error) {
	p, _, err := a.resumable()
	if err != nil {
		return a.Status(), err
	}
	a.update(func(s *Status) { s.State, s.LastError, s.VerificationCode = StatePending, "", p.VerificationCode })
	res, err := a.resume(ctx, p, opts.OnPending)
	return a.pairEnded(res, err)
}

// pairEnded stores a pairing's result, or goes back to what is stored; a
// request the gateway answered is forgotten either way.
func (a *Agent) pairEnded(res *pairing.Result, err error) (Status, error) {
	if err != nil && !keepPending(err) {
		if cerr := a.clearPending(); cerr != nil {
			a.cfg.Logger.Error("forgetting the pending pairing request", "err", cerr)
		}
	}
	if err != nil {
		a.mu.Lock()
		loadErr := a.load() // back to what is stored
		a.mu.Unlock()
		if loadErr != nil {
			a.cfg.Logger.Error("reloading node identity", "err", loadErr)
		}
		a.update(func(s *Status) { s.LastError = err.Error() })
		return a.Status(), err
	}
	if err := a.save(res); err != nil {
		return a.Status(), err
	}
	if err := a.clearPending(); err != nil {
		return a.Status(), err
	}
	a.cfg.Logger.Info("paired", "gateway", res.GatewayName, "device", res.DeviceID)
	return a.Status(), nil
}

func (a *Agent) deviceKey() (*identity.DeviceKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.key != nil {
		return a.key, nil
	}
	key, err := identity.GenerateDeviceKey(a.cfg.Rand)
	if err != nil {
		return nil, err
	}
	pemBytes, err := key.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Secrets.Set(itemKey, pemBytes); err != nil {
		return nil, fmt.Errorf("storing the device key: %w", err)
	}
	a.key = key
	a.status.DeviceID = key.ID().String()
	return key, nil
}

// save stores a pairing result: certificates in the secret store, addresses
// in node.json (written atomically).
func (a *Agent) save(res *pairing.Result) error {
	if err := a.cfg.Secrets.Set(itemCert, certPEM(res.DeviceCertificate)); err != nil {
		return fmt.Errorf("storing the device certificate: %w", err)
	}
	if err := a.cfg.Secrets.Set(itemCA, certPEM(res.CACertificate)); err != nil {
		return fmt.Errorf("storing the gateway CA certificate: %w", err)
	}
	conf := StoredConfig{DeviceName: a.cfg.Name, GatewayName: res.GatewayName, Gateways: res.Addresses}
	a.confMu.Lock()
	defer a.confMu.Unlock()
	if err := a.writeJSON(ConfigFile, conf); err != nil {
		return fmt.Errorf("writing node configuration: %w", err)
	}
	a.mu.Lock()
	err := a.load()
	a.mu.Unlock()
	a.update(func(*Status) {})
	return err
}

// Forget removes the pairing (certificate, CA, addresses); the device key
// stays, so the device ID is the same when it pairs again.
func (a *Agent) Forget() error {
	a.confMu.Lock()
	defer a.confMu.Unlock()
	for _, item := range []string{itemCert, itemCA} {
		if err := a.cfg.Secrets.Delete(item); err != nil {
			return fmt.Errorf("forgetting %s: %w", item, err)
		}
	}
	if err := os.Remove(filepath.Join(a.cfg.ConfigDir, ConfigFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forgetting the gateway: %w", err)
	}
	if err := a.clearPending(); err != nil {
		return err
	}
	a.mu.Lock()
	a.cert, a.ca, a.conf = nil, nil, StoredConfig{}
	a.certFrom, a.certUntil = time.Time{}, time.Time{}
	err := a.load()
	a.mu.Unlock()
	a.update(func(*Status) {})
	return err
}

// Run keeps a session to the gateway up until ctx ends, reconnecting with
// exponential backoff and full jitter. It dials the gateway addresses in
// a random order, each attempt starting past the address that failed
// last, and keeps the addresses each Welcome names (learnAddresses), so
// that a node of a cluster fails over to any of its gateways. It returns
// when the device is revoked, with an error that says so. A node whose
// pairing request waits for approval first collects its certificate.
func (a *Agent) Run(ctx context.Context) error {
	if !a.Paired() && a.HasPendingPairing() {
		if err := a.awaitPairing(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	a.mu.Lock()
	cert, ca, conf, name := a.cert, a.ca, a.conf, a.status.DeviceName
	a.mu.Unlock()
	if cert == nil {
		return errors.New("this node is not paired; pair it first (palyra node pair)")
	}
	if !conf.RevokedAt.IsZero() {
		return fmt.Errorf("this device was %s: %w", revokedMessage(conf.RevokedAt), carrier.ErrRevoked)
	}
	// One agent runs per config directory: two would answer the same
	// calls and overwrite each other's files.
	lock, err := dirlock.Acquire(a.cfg.ConfigDir, LockFile, "node")
	if err != nil {
		return err
	}
	defer lock.Release()
	defer a.journal.close()
	backoff := carrier.NewBackoff(nil)
	order := newAddressOrder(nil)
	// proof says whether an attempt dials QUIC alone (carriers.quicProven):
	// after the gateway's GoAway over QUIC, until a session is up again
	// or the network changes (see quicProof).
	var proof quicProof
	events := a.cfg.NetworkEvents(ctx)
	a.mu.Lock()
	a.netEvents = events
	a.mu.Unlock()
	for {
		a.update(func(s *Status) { s.State, s.RetryAt = StateConnecting, time.Time{} })
		attemptStart := time.Now()
		var upAt time.Time
		err := a.renewIfExpired(ctx)
		var d dialed
		a.mu.Lock()
		// The addresses a Welcome named count from the next attempt on.
		capsVersion, gateways := a.capsVersion, a.conf.Gateways
		a.mu.Unlock()
		dialCfg := carrier.Config{
			Addresses:         order.next(gateways),
			ClientCertificate: a.clientCertificate,
			CACertificate:     ca,
			Register: &nodev1.RegisterNode{
				Name:         name,
				Platform:     a.cfg.Platform,
				Version:      version.Version,
				Capabilities: manifest(a.caps.List()),
			},
			Now:    a.cfg.Now,
			Logger: a.cfg.Logger,
			Invoke: a.handleInvoke,
			// A call ends when the agent stops; it outlives its
			// session, and its result is kept for the next delivery.
			Calls: ctx,
		}
		if err == nil {
			d, err = a.dial(ctx, dialCfg, proof.holds(a.cfg.Now()))
			if err != nil && len(dialCfg.Addresses) > 0 {
				order.pass(dialCfg.Addresses[0])
			}
		}
		if err == nil {
			proof = quicProof{} // the session's end decides anew
			upAt = a.cfg.Now()
			a.update(func(s *Status) {
				s.State, s.LastError, s.ConnectedSince = StateConnected, "", upAt
				s.Transport, s.FallbackReason, s.FallbackError = d.transport, d.reason, d.detail
				if n := d.conn.Welcome().GetGatewayName(); n != "" {
					s.GatewayName = n
				}
			})
			// d is not used past this call: its session may be replaced
			// (a move from gRPC to QUIC), and d would hold the old one.
			var endedAt string
			endedAt, err = a.session(ctx, d, dialCfg, capsVersion)
			if !errors.Is(err, errDroppedOnEvent) {
				// Its gateway failed or went away: the next attempt
				// tries the others first.
				order.pass(endedAt)
			}
		}
		if ctx.Err() != nil {
			a.update(func(s *Status) { s.State, s.ConnectedSince = StateOffline, time.Time{} })
			return nil
		}
		if errors.Is(err, carrier.ErrRevoked) {
			a.cfg.Logger.Info("gateway refused this device as revoked", "err", err)
			err = fmt.Errorf("this device has been revoked by the gateway, which will not accept it again: %w", carrier.ErrRevoked)
			a.recordRevoked()
			return err
		}
		if errors.Is(err, errDroppedOnEvent) {
			backoff.Reset()
			a.update(func(s *Status) {
				s.ConnectedSince = time.Time{}
				s.Transport, s.FallbackReason, s.FallbackError = "", "", ""
			})
			continue
		}
		if !upAt.IsZero() {
			backoff.SessionEnded(a.cfg.Now().Sub(upAt))
		}
		a.mu.Lock()
		onQUIC := !upAt.IsZero() && a.status.Transport == wire.TransportQUIC
		a.mu.Unlock()
		lastError := ""
		if err != nil {
			lastError = err.Error()
		}
		var wait time.Duration
		if within, goAway := carrier.ReconnectWithin(err); goAway {
			// The gateway is restarting and spreads its nodes' returns
			// over within; a clean end, not a failure for the backoff.
			wait = time.Duration(mathrand.Int64N(int64(within) + 1))
			backoff.Reset()
			if onQUIC {
				proof = goAwayProof(a.cfg.Now(), within)
			}
			lastError = fmt.Sprintf("gateway restarting, reconnecting in %d s", int((wait+time.Second/2)/time.Second))
			a.cfg.Logger.Info(lastError, "window", within)
		} else if busyWait, busy := carrier.RetryAfter(err); busy {
			// The gateway answered and named the wait (its store
			// failed); the backoff is for gateways that do not answer.
			wait = busyWait
			lastError = fmt.Sprintf("gateway busy, retrying in %d s", int((wait+time.Second/2)/time.Second))
			a.cfg.Logger.Warn(lastError, "err", err)
		} else if now := a.cfg.Now(); proof.fast(now) || (proof.holds(now) && errors.Is(err, carrier.ErrConnectionRefused)) {
			// The gateway asked for this return and is back, or about
			// to be: an attempt lost in the crowd of returning nodes is
			// repeated within the window (retryWait).
			wait = proof.retryWait()
			a.cfg.Logger.Info("gateway connection failed after its GoAway", "err", err, "retry_in", wait)
		} else {
			wait = backoff.Next()
			if upAt.IsZero() {
				// The backoff runs from the failed attempt's start: an
				// attempt that timed out has waited already, and a path
				// that comes back is found by the next attempt, not
				// after the timeout and a backoff on top. A refused
				// attempt fails at once and waits the whole backoff.
				wait = max(0, wait-time.Since(attemptStart))
			}
			a.cfg.Logger.Info("gateway connection lost", "err", err, "retry_in", wait)
		}
		retry := a.cfg.Now().Add(wait)
		a.update(func(s *Status) {
			s.State, s.RetryAt, s.ConnectedSince = StateOffline, retry, time.Time{}
			s.Transport, s.FallbackReason, s.FallbackError = "", "", ""
			if lastError != "" {
				s.LastError = lastError
			}
		})
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			a.update(func(s *Status) { s.RetryAt = time.Time{} })
			return nil
		case <-timer.C:
		case ev, ok := <-events:
			if !ok {
				events = nil // Run is ending
			}
			// A new network (or a wake) is a new start: try now, and
			// from the shortest backoff if that fails.
			timer.Stop()
			backoff.Reset()
			proof = quicProof{} // a new network proves nothing yet
			a.cfg.Logger.Info("network changed; reconnecting now", "event", ev.Kind, "detail", ev.Detail)
		}
	}
}

// quicProofGrace is how long past a GoAway's window the GoAway still
// proves that UDP reaches the gateway. 10,000 nodes told to come back
// within 15 s take longer than that when the restarted gateway is slow
// with their handshakes: a node whose QUIC attempt timed out in the crush
// tries QUIC alone again rather than open a TCP connection beside it (one
// per node, both the node's and the gateway's descriptor, and a TLS
// handshake more for the crowded gateway, for nothing: UDP worked a moment
// ago). A path that changed makes a network event, which ends the proof
// at once; one that changed without an event is found after the grace.
//
// A longer window is a larger crowd, slower to get back in: the grace is
// at least quicProofWindows windows. 10,000 nodes on 2 cores, told 25 s,
// were still coming back 85 s after the GoAway, when a grace of a minute
// ended; 1,614 of them then raced TCP and connected over it.
const (
	quicProofGrace   = time.Minute
	quicProofWindows = 4
)

// quicProof is until when the gateway's GoAway over QUIC lets a node dial
// QUIC alone, until when a failed attempt is retried soon (retryWait),
// and the window the GoAway asked for; the zero value proves nothing.
type quicProof struct {
	until, fastUntil time.Time
	within           time.Duration
}

// fastRetryWindows is how many windows after a GoAway every failed
// attempt is retried soon: the returning crowd is in them. Past them
// only a refusal (an answer: the gateway is there, its handshakes full)
// is; a gateway that does not answer at all may not be coming back (the
// desktop app's local gateway turned off), and the node then waits the
// backoff and says so, rather than dial for the rest of the proof. One
// window: a node alone is told 2 s and its first attempt, begun within
// them, waits 3 s for an answer, so it backs off as before.
const fastRetryWindows = 1

// goAwayProof is the proof of a GoAway over QUIC at now that asked for a
// return within.
func goAwayProof(now time.Time, within time.Duration) quicProof {
	grace := max(quicProofGrace, quicProofWindows*within)
	return quicProof{until: now.Add(within + grace), fastUntil: now.Add(fastRetryWindows * within), within: within}
}

// fast says whether an attempt that failed at now is retried soon,
// whatever the failure.
func (p quicProof) fast(now time.Time) bool { return now.Before(p.fastUntil) }

// retryWait is the wait after an attempt that failed soon after a GoAway
// (or was refused under its proof): drawn evenly from the first half of
// the window. A restarted gateway that its nodes come back to at once
// refuses the handshakes past its cap, or answers them too late; the
// backoff would double its ceiling with each such attempt, up to 30 s,
// and nodes refused a few times would come back long after the window,
// to a gateway that is idle by then. Half the window keeps them within
// it, and spreads their next attempts as the window spread the first:
// every attempt, even a refused one, costs the gateway (and the node a
// new TLS key share), so retrying sooner would crowd a gateway that is
// slower than the window assumed. A gateway that asked for no window at
// all still gets the backoff's first spread, so that its refusals do not
// have the node dial in a loop.
func (p quicProof) retryWait() time.Duration {
	spread := max(p.within/2, carrier.BackoffStart)
	return time.Duration(mathrand.Int64N(int64(spread) + 1))
}

// holds says whether an attempt at now dials QUIC alone.
func (p quicProof) holds(now time.Time) bool { return now.Before(p.until) }

// prober is a session that can check the gateway still answers (both
// carriers' Conns are).
type prober interface {
	Probe(ctx context.Context) error
}

// dropIfDead closes conn, which came up at upAt, when an event says it
// may be dead, until ctx ends. After a wake it always does: the lease has
// likely run out at the gateway during the sleep, the NAT binding is gone,
// and a reconnect costs one round trip, less than finding out. After a
// network change it probes (an immediate renewal, answered within
// carrier.ProbeTimeout) and closes only a session that does not answer,
// so a route added somewhere does not cost a working session. Events
// older than the session say nothing about it. It reports whether it
// closed conn.
func (a *Agent) dropIfDead(ctx context.Context, conn carrier.Conn, upAt time.Time, events <-chan netwatch.Event) bool {
	for {
		var ev netwatch.Event
		select {
		case <-ctx.Done():
			return false
		case e, ok := <-events:
			if !ok {
				return false // Run is ending
			}
			ev = e
		}
		if ev.At.Before(upAt) {
			continue
		}
		if ev.Kind != netwatch.Wake {
			p, ok := conn.(prober)
			if !ok {
				continue
			}
			err := p.Probe(ctx)
			if err == nil || ctx.Err() != nil {
				continue
			}
			a.cfg.Logger.Info("network changed and the gateway does not answer; reconnecting", "detail", ev.Detail, "err", err)
		} else {
			a.cfg.Logger.Info("woke from sleep; reconnecting", "detail", ev.Detail)
		}
		_ = conn.Close()
		return true
	}
}

// errDroppedOnEvent ends a session dropIfDead closed: Run redials at once,
// without a backoff, as after a wake or a network change while offline.
var errDroppedOnEvent = errors.New("the session was dropped after a wake or network change")

// serve runs a registered session until it ends, renewing the device
// certificate over it when it is due.
func (a *Agent) serve(ctx context.Context, conn carrier.Conn, registeredVersion int) error {
	upAt := time.Now()
	a.learnAddresses(conn)
	a.mu.Lock()
	events := a.netEvents
	a.conn = conn
	changed := a.capsVersion != registeredVersion
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		// After a move to QUIC the old session ends while the new one runs.
		if a.conn == conn {
			a.conn = nil
		}
		a.mu.Unlock()
	}()
	if changed {
		if err := conn.SendCapabilities(manifest(a.caps.List())); err != nil {
			a.cfg.Logger.Info("could not send capabilities", "err", err)
		}
	}
	renewCtx, stopRenewing := context.WithCancel(ctx)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		a.renewWhileConnected(renewCtx, conn)
	}()
	dropped := make(chan bool, 1)
	go func() { dropped <- a.dropIfDead(renewCtx, conn, upAt, events) }()
	err := conn.Serve(ctx)
	stopRenewing()
	<-renewDone
	if <-dropped {
		return errDroppedOnEvent
	}
	return err
}

// Certificate renewal pacing: a certificate is renewed when renewAtMin to
// renewAtMax of its lifetime has passed (a random point, so that nodes paired
// together do not all renew at once), never twice within
// minRenewalInterval, and after a failure tried again within
// renewalRetry.
const (
	renewAtMin         = 0.60
	renewAtMax         = 0.73
	minRenewalInterval = 30 * time.Second
	renewalRetry       = time.Minute
)

// renewWhileConnected renews the certificate over conn each time it is due,
// until ctx ends. A failed renewal is logged and retried; the session goes
// on, and a certificate that runs out is renewed by challenge on the next
// connection (renewIfExpired).
func (a *Agent) renewWhileConnected(ctx context.Context, conn carrier.Conn) {
	var last time.Time
	retry := time.Duration(0)
	for {
		wait := retry
		if wait == 0 {
			wait = a.untilRenewal()
			if !last.IsZero() {
				wait = max(wait, minRenewalInterval-a.cfg.Now().Sub(last))
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		last = a.cfg.Now()
		err := a.renewOver(ctx, conn)
		if errors.Is(err, errors.ErrUnsupported) {
			// The gRPC carrier cannot renew: renew by challenge over the
			// pairing service, then start a new session, which presents
			// the new certificate (and tries QUIC again).
			if err = a.renewByChallenge(ctx); err == nil {
				a.cfg.Logger.Info("certificate renewed by challenge; reconnecting to present it")
				_ = conn.Close()
				return
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			retry = renewalRetry/2 + time.Duration(mathrand.Int64N(int64(renewalRetry/2)))
			a.cfg.Logger.Warn("renewing the device certificate failed; will retry", "err", err, "retry_in", retry)
			continue
		}
		retry = 0
	}
}

// untilRenewal is how long until the current certificate is due.
func (a *Agent) untilRenewal() time.Duration {
	a.mu.Lock()
	from, until := a.certFrom, a.certUntil
	a.mu.Unlock()
	life := until.Sub(from)
	frac := renewAtMin + (renewAtMax-renewAtMin)*mathrand.Float64()
	due := from.Add(time.Duration(frac * float64(life)))
	return max(due.Sub(a.cfg.Now()), 0)
}

// renewOver asks the gateway for a fresh certificate over the session.
func (a *Agent) renewOver(ctx context.Context, conn carrier.Conn) error {
	a.mu.Lock()
	key, name := a.key, a.status.DeviceName
	a.mu.Unlock()
	csr, err := key.CreateCSR(a.cfg.Rand, name)
	if err != nil {
		return fmt.Errorf("creating the renewal request: %w", err)
	}
	der, err := conn.RenewCertificate(ctx, csr)
	if err != nil {
		return err
	}
	return a.storeCertificate(der)
}

// renewIfExpired renews a certificate that ran out (say, while the laptop
// slept) by signing the gateway's challenge with the device key.
func (a *Agent) renewIfExpired(ctx context.Context) error {
	a.mu.Lock()
	until := a.certUntil
	a.mu.Unlock()
	if a.cfg.Now().Before(until) {
		return nil
	}
	return a.renewByChallenge(ctx)
}

// renewByChallenge renews the certificate through the pairing service, by
// signing the gateway's challenge with the device key: for a certificate
// that ran out, and for sessions that cannot renew it themselves.
func (a *Agent) renewByChallenge(ctx context.Context) error {
	a.mu.Lock()
	key, name, gateways, ca := a.key, a.status.DeviceName, a.conf.Gateways, a.ca
	a.mu.Unlock()
	var err error
	for _, addr := range gateways {
		var der []byte
		der, err = pairclient.RenewExpired(ctx, pairclient.RenewOptions{
			Address: addr, Key: key, CA: ca, Name: name, Rand: a.cfg.Rand, Now: a.cfg.Now,
		})
		if err == nil {
			return a.storeCertificate(der)
		}
		if errors.Is(err, pairing.ErrDeviceRevoked) {
			return fmt.Errorf("%w: %w", carrier.ErrRevoked, err)
		}
	}
	return fmt.Errorf("renewing the expired device certificate: %w", err)
}

// storeCertificate keeps a renewed certificate and uses it from now on.
func (a *Agent) storeCertificate(der []byte) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	if err := a.cfg.Secrets.Set(itemCert, certPEM(cert)); err != nil {
		return fmt.Errorf("storing the renewed certificate: %w", err)
	}
	a.mu.Lock()
	a.setCertificate(cert)
	a.mu.Unlock()
	a.update(func(s *Status) { s.CertificateNotAfter = cert.NotAfter })
	a.cfg.Logger.Info("device certificate renewed", "not_after", cert.NotAfter)
	return nil
}

func (a *Agent) clientCertificate() (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cert == nil {
		return nil, errors.New("no device certificate")
	}
	return a.cert, nil
}

// setCertificate makes cert the device certificate; a.mu is held.
func (a *Agent) setCertificate(cert *x509.Certificate) {
	a.cert = &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: a.key.Signer()}
	a.certFrom, a.certUntil = cert.NotBefore, cert.NotAfter
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	der, err := pemCertificate(b)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func pemCertificate(b []byte) ([]byte, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return block.Bytes, nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
