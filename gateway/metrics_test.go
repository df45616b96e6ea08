package gateway

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/internal/connlimit"
	"github.com/palyra/palyra-go/internal/version"
)

func TestGatewayMetrics(t *testing.T) {
	nodes := 2.0
	m := newGatewayMetrics(gauges{
		connectedNodes:   func() float64 { return nodes },
		unauthenticated:  func() float64 { return 17 },
		quicHandshakes:   func() float64 { return 5 },
		pairingRuns:      func() float64 { return 4 },
		pairingAddresses: func() float64 { return 7 },
		pairingWaiting:   func() float64 { return 2 },
		storeCommits:     func() float64 { return 12 },
		sweeper:          func() float64 { return 1 },
		cluster: &clusterGauges{
			listening: func() float64 { return 0 },
			losses:    func() float64 { return 2 },
			applied:   func() float64 { return 41 },
		},
		peerConnections: func() float64 { return 2 },
	})
	m.invocationDone(transportQUIC, outcomeOK, 3*time.Millisecond)
	m.invocationDone(transportGRPC, "offline", 50*time.Microsecond)
	// Codes a node invents, and unknown transports, are bounded.
	m.invocationDone("carrier-pigeon", "made_up_by_a_node\n", time.Minute)
	m.pairingAttempt(pairingsvc.OutcomePaired)
	m.pairingAttempt(pairingsvc.OutcomeWrongCode)
	m.pairingAttempt("nonsense")
	m.pairingRefused(limit.ReasonAddress)
	m.pairingRefused(limit.ReasonAddress)
	m.pairingRefused("made_up")
	m.tcpRefused(connlimit.PerSource)
	m.tcpRefused(connlimit.PerSource)
	m.tcpRefused("invented")
	m.quicRefused(connlimit.Total)
	m.quicRetried()
	m.nodeDeferred()
	m.nodeDeferred()
	m.forwarded(outcomeOK)
	m.forwarded("invented_by_a_peer")
	nodes = 3

	var b bytes.Buffer
	if _, err := m.registry.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE palyra_invocations_total counter\n",
		"palyra_invocations_total{outcome=\"ok\"} 1\n",
		"palyra_invocations_total{outcome=\"offline\"} 1\n",
		"palyra_invocations_total{outcome=\"other\"} 1\n",
		"palyra_invocations_total{outcome=\"denied\"} 0\n",
		"# TYPE palyra_invocation_duration_seconds histogram\n",
		"palyra_invocation_duration_seconds_bucket{transport=\"grpc\",le=\"0.0001\"} 1\n",
		"palyra_invocation_duration_seconds_bucket{transport=\"quic\",le=\"0.0025\"} 0\n",
		"palyra_invocation_duration_seconds_bucket{transport=\"quic\",le=\"0.005\"} 1\n",
		"palyra_invocation_duration_seconds_bucket{transport=\"quic\",le=\"30\"} 1\n",
		"palyra_invocation_duration_seconds_bucket{transport=\"other\",le=\"30\"} 0\n",
		"palyra_invocation_duration_seconds_bucket{transport=\"other\",le=\"+Inf\"} 1\n",
		"palyra_invocation_duration_seconds_count{transport=\"quic\"} 1\n",
		"palyra_pairing_attempts_total{outcome=\"paired\"} 1\n",
		"palyra_pairing_attempts_total{outcome=\"wrong_code\"} 1\n",
		"palyra_pairing_attempts_total{outcome=\"expired\"} 0\n",
		"palyra_pairing_attempts_total{outcome=\"other\"} 1\n",
		"# TYPE palyra_connected_nodes gauge\npalyra_connected_nodes 3\n",
		"palyra_pairing_refused_total{reason=\"address_rate\"} 2\n",
		"palyra_pairing_refused_total{reason=\"busy\"} 0\n",
		"palyra_pairing_refused_total{reason=\"other\"} 1\n",
		"# TYPE palyra_pairing_runs_in_progress gauge\npalyra_pairing_runs_in_progress 4\n",
		"palyra_pairing_tracked_addresses 7\n",
		"palyra_pairing_devices_waiting 2\n",
		"# TYPE palyra_store_commits_total counter\npalyra_store_commits_total 12\n",
		"palyra_build_info{version=\"" + version.Version + "\"} 1\n",
		"palyra_tcp_connections_refused_total{cap=\"per_source\"} 2\n",
		"palyra_tcp_connections_refused_total{cap=\"total\"} 0\n",
		"palyra_tcp_connections_refused_total{cap=\"other\"} 1\n",
		"palyra_quic_handshakes_refused_total{cap=\"total\"} 1\n",
		"palyra_quic_handshakes_refused_total{cap=\"per_source\"} 0\n",
		"# TYPE palyra_quic_retries_total counter\npalyra_quic_retries_total 1\n",
		"# TYPE palyra_nodes_deferred_total counter\npalyra_nodes_deferred_total 2\n",
		"# TYPE palyra_tcp_unauthenticated_connections gauge\npalyra_tcp_unauthenticated_connections 17\n",
		"# TYPE palyra_quic_handshakes_in_progress gauge\npalyra_quic_handshakes_in_progress 5\n",
		"# TYPE palyra_sweeper gauge\npalyra_sweeper 1\n",
		"# TYPE palyra_revocation_listener_up gauge\npalyra_revocation_listener_up 0\n",
		"# TYPE palyra_revocation_listener_losses_total counter\npalyra_revocation_listener_losses_total 2\n",
		"# TYPE palyra_revocations_applied gauge\npalyra_revocations_applied 41\n",
		"# TYPE palyra_peer_connections gauge\npalyra_peer_connections 2\n",
		"palyra_forwarded_calls_total{outcome=\"ok\"} 1\n",
		"palyra_forwarded_calls_total{outcome=\"other\"} 1\n",
		"palyra_forwarded_calls_total{outcome=\"offline\"} 0\n",
		"palyra_invocation_duration_seconds_count{transport=\"peer\"} 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "made_up") || strings.Contains(out, "pigeon") || strings.Contains(out, "nonsense") || strings.Contains(out, "invented") {
		t.Errorf("a value outside the known sets reached the output:\n%s", out)
	}

	// A gateway without metrics calls the same methods on nil.
	var none *gatewayMetrics
	none.invocationDone(transportQUIC, outcomeOK, time.Second)
	none.pairingAttempt(pairingsvc.OutcomePaired)
	none.pairingRefused(limit.ReasonBusy)
	none.tcpRefused(connlimit.Total)
	none.quicRefused(connlimit.Total)
	none.quicRetried()
	none.forwarded(outcomeOK)
}
