package node

import (
	"context"
	"fmt"

	"github.com/palyra/palyra-go/node/grpccarrier"
	"github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// nodeConn is a registered session on either carrier: QUIC
// (quiccarrier.Conn) or gRPC over TCP (grpccarrier.Conn).
type nodeConn interface {
	Welcome() *nodev1.Welcome
	Serve(ctx context.Context) error
	SendCapabilities(caps []*nodev1.Capability) error
	SendEvent(ev *nodev1.NodeEvent) error
	RenewCertificate(ctx context.Context, csrDER []byte) ([]byte, error)
	Close() error
}

var (
	_ nodeConn = (*quiccarrier.Conn)(nil)
	_ nodeConn = (*grpccarrier.Conn)(nil)
)

// Transports, as Status.Transport names them.
const (
	TransportQUIC = "quic"
	TransportGRPC = "grpc"
)

// dial connects over QUIC and, when that fails for a reason other than the
// gateway's verdict on this device (UDP blocked, say), over gRPC on the
// same addresses. It returns the session, its transport and, after a
// fallback, why QUIC failed.
func (a *Agent) dial(ctx context.Context, cfg quiccarrier.Config) (nodeConn, string, string, error) {
	c, err := quiccarrier.Dial(ctx, cfg)
	if err == nil {
		return c, TransportQUIC, "", nil
	}
	if ctx.Err() != nil || quiccarrier.IsVerdict(err) {
		return nil, "", "", err
	}
	a.cfg.Logger.Info("QUIC failed; trying gRPC over TCP", "err", err)
	g, gerr := grpccarrier.Dial(ctx, cfg)
	if gerr != nil {
		if quiccarrier.IsVerdict(gerr) {
			return nil, "", "", gerr
		}
		return nil, "", "", fmt.Errorf("%w; gRPC fallback: %w", err, gerr)
	}
	a.cfg.Logger.Warn("connected over gRPC (TCP): QUIC (UDP) failed", "quic_err", err)
	return g, TransportGRPC, err.Error(), nil
}
