package gateway

import (
	"context"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
)

// RegisterNode is what the carriers call when device id registers, past
// their handshake's check: NodeRegistered of the gateway's runtime.
func (g *Gateway) RegisterNode(ctx context.Context, id identity.DeviceID) error {
	return g.runtime.NodeRegistered(ctx, carrier.SessionInfo{DeviceID: id, Name: "test"})
}

// RegistrationsWaiting is how many registrations wait for their commit.
func (g *Gateway) RegistrationsWaiting() int { return g.registrations.Waiting() }
