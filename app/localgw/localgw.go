// Package localgw runs the whole system on one machine: the embedded gateway
// on loopback, with this device paired to it automatically. It is what the
// desktop app's "Run local gateway" and `palyra-desktop --headless-gateway`
// drive, with no UI of its own: it owns the gateway's data directory, its
// remembered port and admin socket, pairing this device by an auto-approved
// code, and the codes and approvals for other devices.
//
// It must not import fyne or anything that needs cgo (it builds with
// CGO_ENABLED=0); app/ renders what it reports and calls its methods.
package localgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/pairing/qr"
	"github.com/palyra/palyra-go/internal/atomicfile"
	"github.com/palyra/palyra-go/internal/localsock"
	"github.com/palyra/palyra-go/internal/userdirs"
	"github.com/palyra/palyra-go/node"
)

// Defaults and names of the files kept in the data directory.
const (
	// DefaultHost is where the local gateway listens unless told otherwise.
	DefaultHost = "127.0.0.1"
	// NamePrefix starts the default gateway name, followed by the host name.
	NamePrefix = "Palyra local gateway on "
	// PortFile (in the data directory) remembers the port in use, so that
	// paired devices find the gateway again after a restart.
	PortFile = "port"
	// maxSocketPath is the longest Unix socket path every supported OS
	// accepts (macOS: 104 bytes with the terminating NUL).
	maxSocketPath = 103
	// selfCodeTTL is the life of the auto-approved code that pairs this
	// device; it is used at once.
	selfCodeTTL = time.Minute
	// RequestPollInterval is how often Requests looks for new pairing
	// requests (the gateway has no event for them).
	RequestPollInterval = 500 * time.Millisecond
	// RequestTTL is how long a pairing request waits for approval.
	RequestTTL = pairingsvc.DefaultRequestTTL
	// Code names, shown by `palyra pairing list`.
	selfCodeName  = "this device (local gateway)"
	otherCodeName = "desktop app"
)

var (
	// ErrPairedElsewhere means the device is paired with another gateway;
	// it must forget that one before it can pair with the local gateway.
	ErrPairedElsewhere = errors.New("this device is paired with another gateway")
	// ErrPortInUse means the local gateway's port (the remembered one, or
	// the one given in Options.Listen) cannot be bound, usually because
	// another program holds it.
	ErrPortInUse = errors.New("the local gateway's port is not available")
	// ErrStopped means the local gateway is no longer running.
	ErrStopped = errors.New("the local gateway is not running")
)

// Options describe the local gateway. The zero value is ready to use.
type Options struct {
	// DataDir holds the gateway's state (store, CA, port, admin socket);
	// default DefaultDataDir(); created 0700.
	DataDir string
	// Listen is HOST:PORT for TCP (pairing, gRPC) and UDP (QUIC); default
	// "127.0.0.1:0". With port 0, the port used last time (remembered in
	// DataDir/port) is used again, and a free one only on the first start.
	// A port given here is used as given, and remembered.
	Listen string
	// Name is the gateway's name shown to devices (at most 64 bytes);
	// default "Palyra local gateway on <host name>".
	Name   string
	Logger *slog.Logger
}

// DefaultDataDir is the per-user directory for the local gateway's state,
// beside the one `palyra gateway run` uses.
func DefaultDataDir() (string, error) {
	return userdirs.LocalGatewayDataDir(userdirs.OS(os.Getenv))
}

// withDefaults fills in the defaults and checks what was given.
func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		d, err := DefaultDataDir()
		if err != nil {
			return o, err
		}
		o.DataDir = d
	}
	if o.Listen == "" {
		o.Listen = net.JoinHostPort(DefaultHost, "0")
	}
	if _, _, err := splitListen(o.Listen); err != nil {
		return o, err
	}
	if o.Name == "" {
		o.Name = defaultName()
	}
	if len(o.Name) > pairing.MaxNameLength || !utf8.ValidString(o.Name) {
		return o, fmt.Errorf("the local gateway's name must be text of at most %d bytes", pairing.MaxNameLength)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// defaultName names the gateway after the host, cut to fit in a link.
func defaultName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return strings.TrimSuffix(NamePrefix, " on ")
	}
	host = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, host)
	name := NamePrefix + host
	for len(name) > pairing.MaxNameLength {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

func splitListen(listen string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("local gateway listen address %q: %w", listen, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("local gateway listen address %q: invalid port", listen)
	}
	return h, n, nil
}

// Gateway is a running local gateway.
type Gateway struct {
	gw      *gateway.Gateway
	name    string
	address string
	socket  string
	dataDir string
	log     *slog.Logger

	// runCtx ends when the gateway stops or starts stopping.
	runCtx context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// err is Run's result; written before done is closed.
	err error
}

// Start opens the gateway in opts.DataDir and serves it in the background:
// when Start returns, its listeners are bound and devices can connect. It
// runs until ctx ends or Stop is called.
//
// The port is remembered in the data directory and used again on later
// starts; if it is taken, Start fails with an error (ErrPortInUse) that
// names it. A second local gateway on the same data directory is refused
// by its admin socket.
func Start(ctx context.Context, opts Options) (*Gateway, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the local gateway's data directory: %w", err)
	}
	socket := filepath.Join(opts.DataDir, AdminSocketFile)
	// Only a Unix socket's path is bounded; Windows' endpoint file is a
	// file like any other.
	if runtime.GOOS != "windows" && len(socket) > maxSocketPath {
		return nil, fmt.Errorf("the local gateway's admin socket %s is longer than the %d bytes a Unix socket path may have; choose a shorter data directory", socket, maxSocketPath)
	}
	// The socket first: it tells "another local gateway runs here" apart
	// from "another program holds the port".
	admLn, err := localsock.Listen(socket)
	if err != nil {
		return nil, fmt.Errorf("opening the local gateway's admin socket (is it already running?): %w", err)
	}
	tcp, udp, err := bind(opts)
	if err != nil {
		admLn.Close()
		return nil, err
	}
	closeListeners := func() {
		tcp.Close()
		udp.Close()
		admLn.Close()
	}
	address := tcp.Addr().String()
	if err := rememberPort(opts.DataDir, tcp.Addr().(*net.TCPAddr).Port); err != nil {
		closeListeners()
		return nil, err
	}
	gw, err := gateway.New(ctx, gateway.Config{
		DataDir:       opts.DataDir,
		Name:          opts.Name,
		Listen:        address,
		AdminSocket:   socket,
		TCPListener:   tcp,
		PacketConn:    udp,
		AdminListener: admLn,
		RequestTTL:    RequestTTL,
		Logger:        opts.Logger,
	})
	if err != nil {
		closeListeners()
		return nil, fmt.Errorf("starting the local gateway: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	g := &Gateway{
		gw:      gw,
		name:    opts.Name,
		address: gw.Addresses()[0],
		socket:  socket,
		dataDir: opts.DataDir,
		log:     opts.Logger,
		runCtx:  runCtx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go func() {
		err := gw.Run(runCtx)
		cancel()
		closeListeners()
		if err != nil {
			g.log.Error("local gateway stopped", "err", err)
		}
		g.err = err
		close(g.done)
	}()
	return g, nil
}

// bind opens TCP and UDP on one port: the one asked for, else the
// remembered one, else (first start) a free one.
func bind(opts Options) (net.Listener, net.PacketConn, error) {
	host, port, err := splitListen(opts.Listen)
	if err != nil {
		return nil, nil, err
	}
	source := "given in the options"
	if port == 0 {
		remembered, err := readPort(opts.DataDir)
		if err != nil {
			return nil, nil, err
		}
		port = remembered
		source = "remembered in " + filepath.Join(opts.DataDir, PortFile)
	}
	if port != 0 {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		tcp, udp, err := gateway.ListenTCPAndUDP(addr)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: cannot listen on %s, port %d (%s), where this gateway's devices look for it: %w; "+
				"close the program that holds it, or delete the port file to take a new port (devices paired with this gateway must then pair again)",
				ErrPortInUse, addr, port, source, err)
		}
		return tcp, udp, nil
	}
	return gateway.ListenTCPAndUDP(net.JoinHostPort(host, "0"))
}

// readPort returns the remembered port, or 0 when there is none.
func readPort(dataDir string) (int, error) {
	path := filepath.Join(dataDir, PortFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the local gateway's port: %w", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("the local gateway's port file %s does not hold a port number; delete it to take a new port", path)
	}
	return port, nil
}

func rememberPort(dataDir string, port int) error {
	if old, err := readPort(dataDir); err == nil && old == port {
		return nil
	}
	if err := atomicfile.Write(filepath.Join(dataDir, PortFile), []byte(strconv.Itoa(port)+"\n"), 0o600); err != nil {
		return fmt.Errorf("remembering the local gateway's port: %w", err)
	}
	return nil
}

// Stop stops the gateway and waits until it has closed everything. It
// returns the error that stopped it, if it stopped by itself; calling it
// again returns the same.
func (g *Gateway) Stop() error {
	// Turned off, or the app quits: either way nothing restarts it soon.
	g.gw.NotRestarting()
	g.cancel()
	<-g.done
	return g.err
}

// Done is closed when the gateway has stopped, by Stop, by the end of
// Start's context, or by itself (then Err says why).
func (g *Gateway) Done() <-chan struct{} { return g.done }

// Err is the error that stopped the gateway, or nil (still running, or
// stopped as asked).
func (g *Gateway) Err() error {
	select {
	case <-g.done:
		return g.err
	default:
		return nil
	}
}

// Address is the HOST:PORT devices reach the gateway at.
func (g *Gateway) Address() string { return g.address }

// Name is the gateway's name, as devices see it.
func (g *Gateway) Name() string { return g.name }

// AdminSocket is the path of the admin API's Unix socket (for
// `palyra … --admin-socket`).
func (g *Gateway) AdminSocket() string { return g.socket }

// DataDir is where the gateway keeps its state.
func (g *Gateway) DataDir() string { return g.dataDir }

// admin returns the gateway's admin API while the gateway runs.
func (g *Gateway) admin() (*gateway.Gateway, error) {
	if g.runCtx.Err() != nil {
		return nil, ErrStopped
	}
	return g.gw, nil
}

// adminError says what was being done when the admin API refused, or
// that the context ended.
func adminError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// PairAgent pairs the agent with this gateway by an auto-approved code,
// unless it already is (its pinned CA is this gateway's and it knows the
// current address: nothing to do).
// An agent paired with another gateway gets ErrPairedElsewhere; one this
// gateway revoked or removed gets an error wrapping
// pairing.ErrDeviceRevoked. Call it before the agent's Run: an unpaired
// agent does not run.
func (g *Gateway) PairAgent(ctx context.Context, a *node.Agent) error {
	adm, err := g.admin()
	if err != nil {
		return err
	}
	if pinned := a.PinnedCA(); pinned != nil {
		if !pinned.Equal(g.gw.CA()) {
			st := a.Status()
			other := st.GatewayName
			if other == "" {
				other = strings.Join(st.Gateways, ", ")
			}
			return fmt.Errorf("%w (%s); forget it first to pair with the local gateway", ErrPairedElsewhere, other)
		}
		st := a.Status()
		if err := g.checkDevice(ctx, adm, st.DeviceID); err != nil {
			return err
		}
		if slices.Contains(st.Gateways, g.address) {
			return nil
		}
		// Paired with this gateway at another port (its port file was
		// deleted): pairing again tells the device where it is now.
	}
	code, err := adm.MintPairingCode(ctx, gateway.CodeOptions{
		TTL:         selfCodeTTL,
		AutoApprove: true,
		Name:        selfCodeName,
	})
	if err != nil {
		return adminError(ctx, "opening a pairing code for this device", err)
	}
	if _, err := a.Pair(ctx, node.PairOptions{Link: code.Link}); err != nil {
		return fmt.Errorf("pairing this device with the local gateway: %w", err)
	}
	g.log.Info("paired this device with the local gateway", "device", a.Status().DeviceID)
	return nil
}

// checkDevice confirms that a device paired with this gateway may still
// use it.
func (g *Gateway) checkDevice(ctx context.Context, adm *gateway.Gateway, id string) error {
	devices, err := adm.Devices(ctx)
	if err != nil {
		return adminError(ctx, "listing devices", err)
	}
	for _, d := range devices {
		if d.ID.String() == id && !d.Revoked() {
			return nil
		}
	}
	return fmt.Errorf("this device was revoked or removed on the local gateway: %w", pairing.ErrDeviceRevoked)
}

// Code is a pairing code for another device. It is not auto-approved: the
// request it brings waits for Approve or Reject.
type Code struct {
	// PIN is shown as 123-456-789; it is typed with Address.
	PIN string
	// Address is the gateway's HOST:PORT, to type beside the PIN.
	Address string
	// Link is the pairing link; QRPNG is the same link as a QR code.
	Link      string
	ExpiresAt time.Time
	QRPNG     []byte
}

// MintCode opens a pairing code for another device ("Show pairing
// code…"), living ttl (0: 10 minutes; 30 s to 24 h).
func (g *Gateway) MintCode(ctx context.Context, ttl time.Duration) (Code, error) {
	adm, err := g.admin()
	if err != nil {
		return Code{}, err
	}
	code, err := adm.MintPairingCode(ctx, gateway.CodeOptions{TTL: ttl, Name: otherCodeName})
	if err != nil {
		return Code{}, adminError(ctx, "opening a pairing code", err)
	}
	// Four pixels a module, for the app to show unscaled.
	png, err := qr.PNGModules(code.QRPayload(), 4)
	if err != nil {
		return Code{}, err
	}
	return Code{
		PIN:       code.PIN,
		Address:   g.address,
		Link:      code.Link,
		ExpiresAt: code.ExpiresAt,
		QRPNG:     png,
	}, nil
}

// Request is a pairing request waiting for a decision. VerificationCode is
// what the device shows; the person compares the two before approving.
type Request struct {
	ID               string
	DeviceID         string
	Name             string
	Platform         string
	VerificationCode string
	ExpiresAt        time.Time
}

// Requests delivers pairing requests as they become pending, each once,
// until ctx ends or the gateway stops; then the channel is closed. The
// gateway has no event for them, so it looks every RequestPollInterval.
func (g *Gateway) Requests(ctx context.Context) <-chan Request {
	ch := make(chan Request)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(g.runCtx, cancel)
	go func() {
		defer close(ch)
		defer cancel()
		defer stop()
		ticker := time.NewTicker(RequestPollInterval)
		defer ticker.Stop()
		pollRequests(ctx, g.pending, ticker.C, ch, g.log)
	}()
	return ch
}

// pending lists the pending pairing requests.
func (g *Gateway) pending(ctx context.Context) ([]Request, error) {
	adm, err := g.admin()
	if err != nil {
		return nil, err
	}
	reqs, err := adm.PairingRequests(ctx, false)
	if err != nil {
		return nil, adminError(ctx, "listing pairing requests", err)
	}
	var out []Request
	for _, r := range reqs {
		if r.State != gateway.RequestPending {
			continue
		}
		out = append(out, Request{
			ID:               r.ID,
			DeviceID:         r.DeviceID.String(),
			Name:             r.Name,
			Platform:         r.Platform,
			VerificationCode: r.VerificationCode,
			ExpiresAt:        r.ExpiresAt,
		})
	}
	return out, nil
}

// pollRequests lists at once and at every tick, sending each request it
// has not sent yet, until ctx ends. It forgets requests that are no longer
// pending, so what it remembers stays small.
func pollRequests(ctx context.Context, list func(context.Context) ([]Request, error), tick <-chan time.Time, out chan<- Request, log *slog.Logger) {
	sent := map[string]bool{}
	for {
		reqs, err := list(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("looking for pairing requests", "err", err)
		default:
			pending := make(map[string]bool, len(reqs))
			for _, r := range reqs {
				pending[r.ID] = true
				if sent[r.ID] {
					continue
				}
				select {
				case out <- r:
					sent[r.ID] = true
				case <-ctx.Done():
					return
				}
			}
			for id := range sent {
				if !pending[id] {
					delete(sent, id)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// Approve approves a pending pairing request; the device gets its
// certificate at once.
func (g *Gateway) Approve(ctx context.Context, id string) error {
	return g.decide(ctx, id, true)
}

// Reject rejects a pending pairing request; the device is told at once.
func (g *Gateway) Reject(ctx context.Context, id string) error {
	return g.decide(ctx, id, false)
}

func (g *Gateway) decide(ctx context.Context, id string, approve bool) error {
	adm, err := g.admin()
	if err != nil {
		return err
	}
	if approve {
		_, err = adm.ApprovePairingRequest(ctx, id)
	} else {
		_, err = adm.RejectPairingRequest(ctx, id)
	}
	if err != nil {
		verb := "rejecting"
		if approve {
			verb = "approving"
		}
		return adminError(ctx, verb+" the pairing request", err)
	}
	return nil
}

// Node is a node as the gateway sees it (`palyra nodes list`).
type Node struct {
	DeviceID  string
	Name      string
	Platform  string
	Version   string
	Online    bool
	LastSeen  time.Time
	Transport string // "quic" or "grpc" while online
}

// Nodes lists the nodes that have connected, by name.
func (g *Gateway) Nodes(ctx context.Context) ([]Node, error) {
	adm, err := g.admin()
	if err != nil {
		return nil, err
	}
	nodes, err := adm.Nodes(ctx)
	if err != nil {
		return nil, adminError(ctx, "listing nodes", err)
	}
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, Node{
			DeviceID:  n.DeviceID.String(),
			Name:      n.Name,
			Platform:  n.Platform,
			Version:   n.Version,
			Online:    n.Online,
			LastSeen:  n.LastSeen,
			Transport: n.Transport,
		})
	}
	return out, nil
}

// RunHeadless runs only the local gateway until ctx ends
// (`palyra-desktop --headless-gateway`), printing to out where it listens
// and its admin socket, so that `palyra pairing code --admin-socket …`
// works against it.
func RunHeadless(ctx context.Context, opts Options, out io.Writer) error {
	g, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Palyra local gateway %q listening on %s\n", g.Name(), g.Address())
	fmt.Fprintf(out, "state in %s\n", g.DataDir())
	fmt.Fprintf(out, "admin socket %s\n", g.AdminSocket())
	fmt.Fprintf(out, "to pair a device: palyra pairing code --admin-socket %s\n", shellQuote(g.AdminSocket()))
	select {
	case <-ctx.Done():
	case <-g.Done():
	}
	return g.Stop()
}

// shellQuote quotes s for a POSIX shell when it needs it (macOS data
// directories have a space).
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%,=", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
