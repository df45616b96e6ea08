package main

import (
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
)

// The status line over TCP gives the reason in a few words, never the
// full error chain (that is --json's fallback_error).
func TestDescribeFallback(t *testing.T) {
	st := node.Status{
		State: node.StateConnected, GatewayName: "Home", DeviceName: "laptop", Transport: wire.TransportGRPC,
		FallbackReason: "QUIC (UDP) did not answer within 250 ms; using TCP",
		FallbackError:  strings.Repeat("dialing gateway over QUIC at 127.0.0.1:4242: timeout: no recent network activity; ", 4),
	}
	want := "connected to Home as laptop over gRPC (TCP): QUIC (UDP) did not answer within 250 ms; using TCP"
	if got := describe(st); got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
	st.Transport = wire.TransportQUIC
	st.FallbackReason, st.FallbackError = "", ""
	if got := describe(st); got != "connected to Home as laptop" {
		t.Errorf("describe over QUIC = %q", got)
	}
}
