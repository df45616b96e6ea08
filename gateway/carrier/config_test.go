package carrier_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/wire"
)

// Welcome names the gateways' addresses, in the order given, no more than
// a node keeps; none when the gateway has no Addresses.
func TestWelcomeNamesAddresses(t *testing.T) {
	t.Parallel()
	var addrs []string
	for i := range wire.MaxGatewayAddresses + 4 {
		addrs = append(addrs, fmt.Sprintf("10.0.0.%d:7443", i+1))
	}
	now := time.Now()
	c := carrier.Common{GatewayName: "gw", Addresses: func() []string { return addrs }}
	if got := c.Welcome(identity.DeviceID{}, now, now).GetGatewayAddresses(); !slices.Equal(got, addrs[:wire.MaxGatewayAddresses]) {
		t.Fatalf("Welcome names %v, want the first %d of %v", got, wire.MaxGatewayAddresses, addrs)
	}
	addrs = addrs[:2]
	if got := c.Welcome(identity.DeviceID{}, now, now).GetGatewayAddresses(); !slices.Equal(got, addrs) {
		t.Fatalf("Welcome names %v, want %v", got, addrs)
	}
	if got := (&carrier.Common{}).Welcome(identity.DeviceID{}, now, now).GetGatewayAddresses(); got != nil {
		t.Fatalf("without Addresses, Welcome names %v", got)
	}
}
