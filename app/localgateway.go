package app

import (
	"context"
	"time"

	"github.com/palyra/palyra-go/node"
)

// LocalGateway is the gateway embedded in the desktop app, as the UI uses
// it. The root package adapts app/localgw to it.
type LocalGateway interface {
	// Address is the gateway's HOST:PORT on loopback.
	Address() string
	// PairAgent pairs the agent with this gateway with an auto-approved
	// code, unless it is paired with it already.
	PairAgent(ctx context.Context, a *node.Agent) error
	// MintCode makes a pairing code for another device.
	MintCode(ctx context.Context, ttl time.Duration) (PairingCode, error)
	// Requests delivers pairing requests that wait for approval until ctx
	// ends.
	Requests(ctx context.Context) <-chan PairingRequest
	Approve(ctx context.Context, id string) error
	Reject(ctx context.Context, id string) error
	// Stop stops the gateway and waits for it.
	Stop()
}

// StartLocalGateway starts the embedded gateway.
type StartLocalGateway func(ctx context.Context) (LocalGateway, error)

// PairingCode is a code another device pairs with.
type PairingCode struct {
	PIN       string
	Link      string
	ExpiresAt time.Time
	// QRPNG is the link as a QR code image.
	QRPNG []byte
}

// PairingRequest is a device waiting for the owner's approval.
type PairingRequest struct {
	ID               string
	Name             string
	Platform         string
	VerificationCode string
	ExpiresAt        time.Time
}
