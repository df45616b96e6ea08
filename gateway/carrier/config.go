package carrier

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Common is the configuration both carriers take (each carrier's Config
// embeds it).
type Common struct {
	// Registry is the gateway's table of sessions: its Authenticate
	// verifies every connection or RPC, and its Runtime is told about
	// sessions coming and going. Required.
	Registry *Registry
	// LeaseTTL is how long a node counts as present without a frame from
	// it; nodes renew every LeaseTTL/3. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// GatewayName is sent to nodes in Welcome.
	GatewayName string
	// Addresses, if set, are where nodes reach the gateways of this one's
	// database, this one's first, sent in Welcome (the first
	// wire.MaxGatewayAddresses of them) for the node to fail over to.
	Addresses func() []string
}

// Check checks c for the carrier named pkg, which its errors start with,
// and fills in the defaults.
func (c *Common) Check(pkg string) error {
	switch {
	case c.Registry == nil:
		return fmt.Errorf("%s: Config.Registry is required", pkg)
	case c.LeaseTTL < 0:
		return fmt.Errorf("%s: Config.LeaseTTL is negative (%v)", pkg, c.LeaseTTL)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Welcome is the answer to device id's registration at now, with a
// certificate valid until certNotAfter.
func (c *Common) Welcome(id identity.DeviceID, now, certNotAfter time.Time) *nodev1.Welcome {
	var addrs []string
	if c.Addresses != nil {
		addrs = c.Addresses()
		addrs = addrs[:min(len(addrs), wire.MaxGatewayAddresses)]
	}
	return &nodev1.Welcome{
		DeviceId:                  id.String(),
		GatewayName:               c.GatewayName,
		LeaseTtlMs:                c.LeaseTTL.Milliseconds(),
		ServerTimeUnixMs:          now.UnixMilli(),
		CertificateNotAfterUnixMs: certNotAfter.UnixMilli(),
		GatewayAddresses:          addrs,
	}
}
