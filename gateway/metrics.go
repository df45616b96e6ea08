package gateway

import (
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/palyra/palyra-go/gateway/auditlog"
	"github.com/palyra/palyra-go/gateway/dispatch"
	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/internal/callcode"
	"github.com/palyra/palyra-go/internal/connlimit"
	"github.com/palyra/palyra-go/internal/metrics"
	"github.com/palyra/palyra-go/internal/version"
)

// Label values of the gateway's metrics. Every label takes its values from
// a fixed set: error codes come partly from nodes, and a node must not be
// able to grow the gateway's metrics (or a scraper's storage) by inventing
// codes, so anything outside the set is counted as "other".
const (
	outcomeOK    = "ok"
	outcomeOther = "other"

	// Transports an invocation reached its node over; a call forwarded to
	// another gateway is "peer".
	transportQUIC = "quic"
	transportGRPC = "grpc"
	transportPeer = dispatch.TransportPeer
)

// invocationOutcomes are the outcomes palyra_invocations_total counts by
// name: success, the gateway's own error codes, and the codes the nodes
// answer with.
var invocationOutcomes = []string{
	outcomeOK,
	callcode.Offline, callcode.UnknownCapability, callcode.Disabled, callcode.Timeout,
	callcode.NodeGone, callcode.Expired, callcode.BadAnswer,
	callcode.InvalidArguments, callcode.Denied, callcode.Unsupported, callcode.NotAllowed, callcode.OutputTooLarge,
	callcode.Canceled, callcode.Failed, callcode.Interrupted,
	outcomeOther,
}

var (
	capReasons      = []string{string(connlimit.Total), string(connlimit.PerSource)}
	transports      = []string{transportQUIC, transportGRPC, transportPeer, outcomeOther}
	pairingOutcomes = []string{pairingsvc.OutcomePaired, pairingsvc.OutcomeWrongCode, pairingsvc.OutcomeRejected,
		pairingsvc.OutcomeExpired, pairingsvc.OutcomeRefused, outcomeOther}
	refusalReasons        = []string{string(limit.ReasonAddress), string(limit.ReasonBusy), outcomeOther}
	auditOverflowOutcomes = []string{auditlog.OutcomeFolded, auditlog.OutcomeDropped, outcomeOther}
)

// invocationBuckets span 100 µs (a call answered on loopback) to 30 s (the
// default call deadline), in seconds.
var invocationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// gatewayMetrics is the gateway's metric set. Its methods may be called on
// a nil *gatewayMetrics, which records nothing, so a gateway run without a
// metrics endpoint needs no checks at the call sites.
type gatewayMetrics struct {
	registry *metrics.Registry
	// invocations counts finished invocations by outcome ("ok" or the
	// error code).
	invocations *metrics.CounterVec
	// invocationSeconds times invocations from dispatch to result, by the
	// transport that carried them.
	invocationSeconds *metrics.HistogramVec
	// pairingAttempts counts pairing attempts by outcome.
	pairingAttempts *metrics.CounterVec
	// auditOverflows counts the audit events the audit writer's buffer
	// could not hold as they were, by what became of them.
	auditOverflows *metrics.CounterVec
	// tcpRefusals and quicRefusals count what the connection caps
	// refused, by the cap (connlimit.Reason); quicRetries the Retries
	// asked of QUIC clients.
	tcpRefusals  *metrics.CounterVec
	quicRefusals *metrics.CounterVec
	quicRetries  *metrics.Counter
	// nodesDeferred counts the nodes told to come back because too many
	// were connecting at once.
	nodesDeferred *metrics.Counter
	// pairingRefusals counts Pairing service calls the limits refused, by
	// reason.
	pairingRefusals *metrics.CounterVec
	// forwardedCalls counts the calls forwarded to the gateway that holds
	// their node, by outcome.
	forwardedCalls *metrics.CounterVec
}

// gauges are sampled at each scrape; each must be safe to call from any
// goroutine.
type gauges struct {
	// connectedNodes is palyra_connected_nodes.
	connectedNodes func() float64
	// unauthenticated is palyra_tcp_unauthenticated_connections.
	unauthenticated func() float64
	// quicHandshakes is palyra_quic_handshakes_in_progress.
	quicHandshakes func() float64
	// pairingRuns is palyra_pairing_runs_in_progress.
	pairingRuns func() float64
	// pairingAddresses is palyra_pairing_tracked_addresses.
	pairingAddresses func() float64
	// pairingWaiting is palyra_pairing_devices_waiting.
	pairingWaiting func() float64
	// storeCommits is palyra_store_commits_total.
	storeCommits func() float64
	// peerConnections is palyra_peer_connections.
	peerConnections func() float64
	// sweeper is palyra_sweeper.
	sweeper func() float64
	// cluster, on PostgreSQL only, are the revocation listener's.
	cluster *clusterGauges
}

// clusterGauges are the metrics of a gateway that shares its database.
type clusterGauges struct {
	// listening is palyra_revocation_listener_up.
	listening func() float64
	// losses is palyra_revocation_listener_losses_total.
	losses func() float64
	// applied is palyra_revocations_applied.
	applied func() float64
}

// newGatewayMetrics registers the gateway's metrics in a new registry.
func newGatewayMetrics(g gauges) *gatewayMetrics {
	r := metrics.NewRegistry()
	m := &gatewayMetrics{
		registry: r,
		invocations: r.Counter("palyra_invocations_total",
			`Capability invocations finished, by outcome: "ok" or the error code (offline, disabled, unknown_capability, timeout, node_gone, denied, ...; "other" for codes outside the known set).`,
			"outcome"),
		invocationSeconds: r.Histogram("palyra_invocation_duration_seconds",
			"Time from dispatching an invocation to its result, by the transport that reached the node (quic or grpc).",
			invocationBuckets, "transport"),
		pairingAttempts: r.Counter("palyra_pairing_attempts_total",
			"Pairing attempts, by outcome: paired, wrong_code, rejected, expired, refused.",
			"outcome"),
		pairingRefusals: r.Counter("palyra_pairing_refused_total",
			"Pairing service calls (pair, resume, renew) refused by the limits before they began, by reason: address_rate (too many from one source address), busy (too many runs at once). They are not in palyra_pairing_attempts_total.",
			"reason"),
		auditOverflows: r.Counter("palyra_audit_overflow_total",
			`Audit events the audit writer could not hold one by one because it was behind (a slow or locked disk under a flood): "folded" into a per-minute count of their kind from source "*", or "dropped".`,
			"outcome"),
		tcpRefusals: r.Counter("palyra_tcp_connections_refused_total",
			`TCP connections closed at accept by a cap on unauthenticated connections: "total" or "per_source".`,
			"cap"),
		quicRefusals: r.Counter("palyra_quic_handshakes_refused_total",
			`QUIC Initial packets refused (CONNECTION_REFUSED) by a cap on handshakes in progress: "total" or "per_source" (a client's first flight may take two packets).`,
			"cap"),
		nodesDeferred: r.Counter("palyra_nodes_deferred_total",
			`Paired nodes answered "gateway busy, retry in N s" because too many nodes were connecting at once (Config.MaxAdmittingNodes).`).With(),
		forwardedCalls: r.Counter("palyra_forwarded_calls_total",
			`Calls this gateway forwarded to the gateway of its database that holds their node, by outcome: "ok" or the error code.`,
			"outcome"),
		quicRetries: r.Counter("palyra_quic_retries_total",
			"QUIC Retries asked of clients to prove their address, because many handshakes were in progress (per Initial packet).").With(),
	}
	r.GaugeFunc("palyra_connected_nodes", "Nodes with a live session to this gateway.", g.connectedNodes)
	r.GaugeFunc("palyra_tcp_unauthenticated_connections",
		"TCP connections that have not presented a verified device certificate (pairing devices, and connections in their handshake).",
		g.unauthenticated)
	r.GaugeFunc("palyra_quic_handshakes_in_progress", "QUIC handshakes in progress.", g.quicHandshakes)
	r.GaugeFunc("palyra_pairing_runs_in_progress", "Pairing service calls admitted and not yet past their exchange (requests waiting for approval do not count).", g.pairingRuns)
	r.GaugeFunc("palyra_pairing_tracked_addresses", "Source addresses the pairing limits keep a bucket for (bounded).", g.pairingAddresses)
	r.GaugeFunc("palyra_pairing_devices_waiting", "Devices connected and waiting for a decision on their pairing request.", g.pairingWaiting)
	r.GaugeFunc("palyra_peer_connections", "QUIC connections between this gateway and the other gateways of its database, both ways.", g.peerConnections)
	r.CounterFunc("palyra_store_commits_total",
		"Write transactions the store committed, each one sync to disk (audit rows and last-seen times are batched, many to a commit).",
		g.storeCommits)
	r.GaugeFunc("palyra_sweeper",
		"1 if this gateway runs the sweeps (expiring codes, requests and queued calls, pruning the audit log): always on SQLite; on PostgreSQL the one gateway of the database that holds the sweeper lock.",
		g.sweeper)
	if c := g.cluster; c != nil {
		r.GaugeFunc("palyra_revocation_listener_up",
			"1 while the connection that listens for revocations made through other gateways is up (PostgreSQL only).", c.listening)
		r.CounterFunc("palyra_revocation_listener_losses_total",
			"Times the revocation listener's connection was lost or could not be made, once per outage; it reconnects by itself and then applies what was revoked meanwhile.",
			c.losses)
		r.GaugeFunc("palyra_revocations_applied",
			"Sequence number of the last revocation this gateway applied (closed its device's sessions); equal on every gateway of the database once they are caught up.",
			c.applied)
	}
	r.Append(standardMetrics())
	r.Gauge("palyra_build_info", "Always 1; the version label names the gateway's build.", "version").
		With(version.Version).Set(1)
	// Known series start at 0, so rates are right from the first event.
	for _, o := range invocationOutcomes {
		m.invocations.With(o)
		m.forwardedCalls.With(o)
	}
	for _, t := range transports {
		m.invocationSeconds.With(t)
	}
	for _, o := range pairingOutcomes {
		m.pairingAttempts.With(o)
	}
	for _, r := range refusalReasons {
		m.pairingRefusals.With(r)
	}
	for _, o := range auditOverflowOutcomes {
		m.auditOverflows.With(o)
	}
	for _, c := range capReasons {
		m.tcpRefusals.With(c)
		m.quicRefusals.With(c)
	}
	return m
}

// tcpRefused records a TCP connection refused by a cap.
func (m *gatewayMetrics) tcpRefused(r connlimit.Reason) {
	if m == nil {
		return
	}
	m.tcpRefusals.With(known(capReasons, string(r))).Inc()
}

// quicRefused records a QUIC Initial packet refused by a cap.
func (m *gatewayMetrics) quicRefused(r connlimit.Reason) {
	if m == nil {
		return
	}
	m.quicRefusals.With(known(capReasons, string(r))).Inc()
}

// nodeDeferred records a node told to come back because too many were
// connecting at once.
func (m *gatewayMetrics) nodeDeferred() {
	if m == nil {
		return
	}
	m.nodesDeferred.Inc()
}

// quicRetried records a Retry asked of a QUIC client.
func (m *gatewayMetrics) quicRetried() {
	if m == nil {
		return
	}
	m.quicRetries.Inc()
}

// invocationDone records a finished invocation: outcome is "ok" or its
// error code, transport how it reached the node, d how long it took.
func (m *gatewayMetrics) invocationDone(transport, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.invocations.With(known(invocationOutcomes, outcome)).Inc()
	m.invocationSeconds.With(known(transports, transport)).Observe(d.Seconds())
}

// forwarded records the outcome of a call forwarded to another gateway.
func (m *gatewayMetrics) forwarded(outcome string) {
	if m == nil {
		return
	}
	m.forwardedCalls.With(known(invocationOutcomes, outcome)).Inc()
}

// pairingAttempt records the outcome of a pairing attempt
// (pairingsvc.Outcome*).
func (m *gatewayMetrics) pairingAttempt(outcome string) {
	if m == nil {
		return
	}
	m.pairingAttempts.With(known(pairingOutcomes, outcome)).Inc()
}

// pairingRefused records a Pairing service call the limits refused.
func (m *gatewayMetrics) pairingRefused(reason limit.Reason) {
	if m == nil {
		return
	}
	m.pairingRefusals.With(known(refusalReasons, string(reason))).Inc()
}

// auditOverflow records n audit events folded or dropped
// (auditlog.Outcome*).
func (m *gatewayMetrics) auditOverflow(outcome string, n int) {
	if m == nil {
		return
	}
	m.auditOverflows.With(known(auditOverflowOutcomes, outcome)).Add(float64(n))
}

// known returns v when it is in set, else "other".
func known(set []string, v string) string {
	for _, s := range set {
		if s == v {
			return v
		}
	}
	return outcomeOther
}

// standardMetrics writes the go_* (goroutines, threads, memory statistics,
// GC pauses) and process_* (CPU seconds, resident and virtual memory, open
// file descriptors, start time) series of prometheus/client_golang's
// collectors, so the usual dashboards and alerts work on the gateway. The
// library reads them from the runtime and from each OS (procfs on Linux,
// the Windows and macOS APIs), which by hand would mean a reader per OS to
// keep right; they join the gateway's own registry, which keeps serving
// on loopback only. A series the OS cannot give is left out.
func standardMetrics() func(io.Writer) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return func(w io.Writer) error {
		families, err := reg.Gather()
		if err != nil {
			return fmt.Errorf("gathering the Go and process metrics: %w", err)
		}
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(w, f); err != nil {
				return fmt.Errorf("writing %s: %w", f.GetName(), err)
			}
		}
		return nil
	}
}
