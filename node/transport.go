package node

import (
	"context"
	"fmt"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/grpccarrier"
	"github.com/palyra/palyra-go/node/quiccarrier"
)

// dial connects over QUIC and, when that fails for a reason other than the
// gateway's verdict on this device (UDP blocked, say), over gRPC on the
// same addresses. It returns the session, its transport and, after a
// fallback, why QUIC failed.
func (a *Agent) dial(ctx context.Context, cfg carrier.Config) (carrier.Conn, string, string, error) {
	c, err := quiccarrier.Dial(ctx, cfg)
	if err == nil {
		return c, wire.TransportQUIC, "", nil
	}
	if ctx.Err() != nil || carrier.IsVerdict(err) {
		return nil, "", "", err
	}
	a.cfg.Logger.Info("QUIC failed; trying gRPC over TCP", "err", err)
	g, gerr := grpccarrier.Dial(ctx, cfg)
	if gerr != nil {
		if carrier.IsVerdict(gerr) {
			return nil, "", "", gerr
		}
		return nil, "", "", fmt.Errorf("%w; gRPC fallback: %w", err, gerr)
	}
	a.cfg.Logger.Warn("connected over gRPC (TCP): QUIC (UDP) failed", "quic_err", err)
	return g, wire.TransportGRPC, err.Error(), nil
}
