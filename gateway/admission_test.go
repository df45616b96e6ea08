package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
)

// TestStormRefusalsKeepQUIC: nodes that all connect at once to a gateway
// that lets one in at a time are refused for now (answered busy past
// MaxAdmittingNodes, or CONNECTION_REFUSED past MaxQUICHandshakes), which
// proves UDP works: none takes the gRPC fallback, and all get in over
// QUIC.
func TestStormRefusalsKeepQUIC(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*gateway.Config)
		refusals  string
	}{
		{"busy past MaxAdmittingNodes", func(c *gateway.Config) { c.MaxAdmittingNodes = 1 }, "palyra_nodes_deferred_total"},
		{"CONNECTION_REFUSED past MaxQUICHandshakes", func(c *gateway.Config) {
			c.MaxQUICHandshakes, c.QUICRetryThreshold = 1, -1
		}, `palyra_quic_handshakes_refused_total{cap="total"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const nodes = 6
			rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, tc.configure, func(c *gateway.Config) {
				c.MetricsListen = "127.0.0.1:0"
			})
			agents := make([]*node.Agent, nodes)
			for i := range agents {
				agents[i] = pairedAgent(t, rg, fmt.Sprintf("node-%d", i), []capability.Capability{echoCapability}, 0)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var onGRPC sync.Map // device name -> fallback reason
			var watching sync.WaitGroup
			for _, a := range agents {
				watch := a.Watch(ctx)
				watching.Go(func() {
					for st := range watch {
						if st.Transport == wire.TransportGRPC {
							onGRPC.Store(st.DeviceName, st.FallbackReason)
						}
					}
				})
			}
			for _, a := range agents {
				defer runAgent(a)()
			}
			for _, a := range agents {
				waitFor(t, a, time.Minute, "connected over QUIC", func(s node.Status) bool {
					return s.State == node.StateConnected && s.Transport == wire.TransportQUIC
				})
			}
			cancel()
			watching.Wait()
			onGRPC.Range(func(name, reason any) bool {
				t.Errorf("node %s took the gRPC fallback: %s", name, reason)
				return true
			})
			if n := metricValue(t, metricsText(t, rg), tc.refusals); n == 0 {
				t.Errorf("%s is 0: no node was refused, so the test proved nothing", tc.refusals)
			}
		})
	}
}
