package gateway

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/palyra/palyra-go/gateway/cluster"
	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/atomicfile"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// GatewayIDFile, in the data directory, keeps the gateway's ID among the
// gateways of its database, so a restart comes back as the same gateway.
const GatewayIDFile = "gateway.id"

// gatewayID returns cfg's gateway ID: Config.GatewayID, or the one in the
// data directory, made there (the host's name and six random characters)
// the first time.
func gatewayID(cfg Config) (string, error) {
	if cfg.GatewayID != "" {
		if err := identity.CheckGatewayID(cfg.GatewayID); err != nil {
			return "", fmt.Errorf("gateway: %w", err)
		}
		return cfg.GatewayID, nil
	}
	path := filepath.Join(cfg.DataDir, GatewayIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if err := identity.CheckGatewayID(id); err != nil {
			return "", fmt.Errorf("gateway: %s: %w", path, err)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the gateway ID: %w", err)
	}
	id, err := newGatewayID(cfg.Rand)
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving the gateway ID: %w", err)
	}
	return id, nil
}

func newGatewayID(r io.Reader) (string, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("making a gateway ID: %w", err)
	}
	suffix := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:6]
	host, _ := os.Hostname()
	var name strings.Builder
	for _, c := range strings.ToLower(host) {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			name.WriteRune(c)
		case name.Len() > 0 && (c == '-' || c == '.' || c == '_'):
			name.WriteByte('-')
		}
		if name.Len() >= identity.MaxGatewayIDLen-8 {
			break
		}
	}
	base := strings.Trim(name.String(), "-")
	if base == "" {
		base = "gateway"
	}
	return base + "-" + suffix, nil
}

// newCluster makes the gateway a member of its database's gateways, when
// its store is PostgreSQL (on SQLite it is alone: nil).
func (g *Gateway) newCluster() (*cluster.Cluster, error) {
	if g.cfg.Database == "" {
		return nil, nil
	}
	id, err := gatewayID(g.cfg)
	if err != nil {
		return nil, err
	}
	addrs := g.Addresses()
	peer := g.cfg.PeerAddress
	if peer == "" {
		// Its own address, not the advertised ones: those may name the
		// other gateways too, for nodes to fail over to.
		tcp := g.tcp.Addr().(*net.TCPAddr)
		switch {
		case !tcp.IP.IsUnspecified():
			peer = tcp.String()
		case len(g.wildcard) > 0:
			peer = net.JoinHostPort(g.wildcard[0].String(), strconv.Itoa(tcp.Port))
		default:
			return nil, errors.New("gateway: listening on every interface, it needs a peer address (--peer-address) where the other gateways of its database reach it")
		}
	}
	return cluster.New(cluster.Config{
		ID:            id,
		NodeAddresses: addrs,
		PeerAddress:   peer,
		Store:         g.store,
		CA:            g.ca,
		Local:         clusterLocal{g},
		LeaseTTL:      g.cfg.PeerLeaseTTL,
		Forwarded:     g.metrics.forwarded,
		Now:           g.cfg.Now,
		Rand:          g.cfg.Rand,
		Logger:        g.cfg.Logger.With("component", "cluster"),
	})
}

// clusterLocal is this gateway's side of the calls other gateways forward.
type clusterLocal struct{ g *Gateway }

func (l clusterLocal) Epoch(id identity.DeviceID) uint64 {
	s := l.g.sessions.Current(id)
	if s == nil {
		return 0
	}
	return l.g.sessions.Info(s).Epoch
}

func (l clusterLocal) Sessions() []cluster.Session {
	var out []cluster.Session
	for _, s := range l.g.sessions.Sessions() {
		if s.Epoch != 0 {
			out = append(out, cluster.Session{DeviceID: s.DeviceID, Epoch: s.Epoch})
		}
	}
	return out
}

func (l clusterLocal) Run(ctx context.Context, id identity.DeviceID, inv *nodev1.Invoke, timeout time.Duration, progress func(*nodev1.Progress)) *nodev1.Result {
	return l.g.dispatch.RunLocal(ctx, id, inv, timeout, progress)
}

// NodeAddresses are where nodes reach the gateways of this one's
// database, this one's addresses first, then those of the others that are
// live (as read at this gateway's last lease renewal); on SQLite,
// Addresses. Welcome names them, so that nodes can fail over to any
// gateway of the database.
func (g *Gateway) NodeAddresses() []string {
	if g.cluster == nil {
		return g.Addresses()
	}
	return g.cluster.NodeAddresses()
}

// pairingAddresses are the first of NodeAddresses, as many as a pairing
// link or grant may carry.
func (g *Gateway) pairingAddresses() []string {
	addrs := g.NodeAddresses()
	return addrs[:min(len(addrs), pairing.MaxLinkGateways)]
}

// GatewayID is this gateway's ID among the gateways of its database, or ""
// for a gateway alone on SQLite.
func (g *Gateway) GatewayID() string {
	if g.cluster == nil {
		return ""
	}
	return g.cluster.ID()
}

// Peer is another gateway of the database, as Peers lists it.
type Peer = cluster.Peer

// Peers lists the other gateways of the database (none on SQLite).
func (g *Gateway) Peers(ctx context.Context) ([]Peer, error) {
	if g.cluster == nil {
		return nil, nil
	}
	return g.cluster.Peers(ctx)
}

// holders maps the nodes online on any gateway of the database to the
// gateway that holds each, for the node listings; nil on SQLite.
func (g *Gateway) holders(ctx context.Context) (map[identity.DeviceID]string, error) {
	if g.cluster == nil {
		return nil, nil
	}
	return g.cluster.Holders(ctx)
}

// logPeers says which other gateways of the database this one sees as it
// starts.
func (g *Gateway) logPeers(ctx context.Context) {
	if g.cluster == nil {
		return
	}
	peers, err := g.cluster.Peers(ctx)
	if err != nil {
		g.cfg.Logger.Warn("listing the other gateways of the database", "err", err)
		return
	}
	var live []string
	for _, p := range peers {
		if p.Live {
			live = append(live, p.ID+" at "+p.PeerAddress)
		}
	}
	g.cfg.Logger.Info("gateways of this database", "this", g.cluster.ID(), "peer_address", g.cluster.PeerAddress(), "live_peers", live)
}

// remote is the dispatcher's way to the nodes other gateways hold; nil on
// SQLite.
func (g *Gateway) remote() dispatch.Remote {
	if g.cluster == nil {
		return nil
	}
	return g.cluster
}

// peerProtocol serves the other gateways on the node port; nil on SQLite.
func (g *Gateway) peerProtocol() *quiccarrier.Peers {
	if g.cluster == nil {
		return nil
	}
	return &quiccarrier.Peers{
		ALPN:           cluster.ALPN,
		TLSCertificate: g.cluster.TLSCertificate,
		Verify:         g.cluster.VerifyPeer,
		Serve:          g.cluster.ServePeer,
		MaxStreams:     cluster.MaxStreams,
	}
}
