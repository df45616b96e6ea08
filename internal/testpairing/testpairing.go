// Package testpairing serves the gateway's Pairing service the way the
// gateway does (gRPC over server-authenticated TLS on loopback, with a
// real store and CA) for the tests of the service and of the device's
// pairing client.
package testpairing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/palyra/palyra-go/gateway/pairingsvc"
	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/testclock"
	"github.com/palyra/palyra-go/internal/testlog"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// GatewayName is the name the gateway gives itself in grants and links.
const GatewayName = "Test Gateway"

// Gateway is a running Pairing service; it stops when the test ends.
type Gateway struct {
	Addr    string // HOST:PORT of the listener
	Store   *store.Store
	CA      *identity.CA
	Service *pairingsvc.Service
	Clock   *testclock.Clock
	Leaf    *x509.Certificate // the TLS leaf the listener presents
}

// Options change the gateway from the one the tests usually want.
type Options struct {
	// Addresses are what the grant tells devices; by default the
	// listener's own address.
	Addresses []string
	// PresentCA, when set, is the CA certificate the listener's chain
	// carries instead of its own (the leaf stays from its own CA).
	PresentCA *identity.CA
	// Configure adjusts the service's configuration before it starts. The
	// limits start off (Limits.Burst and Concurrency negative): most tests
	// make many failing attempts from 127.0.0.1, which is not what they
	// are about; the tests of the limits set them.
	Configure func(*pairingsvc.Config)
}

// Start serves the Pairing service on 127.0.0.1.
func Start(t testing.TB, o Options) *Gateway {
	t.Helper()
	clk := testclock.New()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "gateway.db"), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := identity.NewCA(rand.Reader, GatewayName, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	addresses := o.Addresses
	if addresses == nil {
		addresses = []string{addr}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServerCertificate(pub, GatewayName, []string{"127.0.0.1"}, identity.IssueOptions{Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pairingsvc.Config{
		Store:             st,
		CA:                ca,
		ServerCertificate: func() []byte { return leaf.Raw },
		Addresses:         func() []string { return addresses },
		GatewayName:       GatewayName,
		Rand:              rand.Reader,
		Now:               clk.Now,
		Logger:            testlog.New(t),
		Limits:            limit.Config{Burst: -1, Concurrency: -1},
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	svc, err := pairingsvc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	chainCA := ca
	if o.PresentCA != nil {
		chainCA = o.PresentCA
	}
	srv := grpc.NewServer(grpc.WaitForHandlers(true), grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, chainCA.Certificate().Raw}, PrivateKey: priv, Leaf: leaf}},
	})))
	pairingv1.RegisterPairingServer(srv, svc)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return &Gateway{Addr: addr, Store: st, CA: ca, Service: svc, Clock: clk, Leaf: leaf}
}

// Mint opens a code lasting ttl in the store, as the admin API does.
func (g *Gateway) Mint(t testing.TB, selector string, autoApprove bool, ttl time.Duration) (*pairing.Code, store.Code) {
	t.Helper()
	code, err := pairing.NewCode(rand.Reader, selector)
	if err != nil {
		t.Fatal(err)
	}
	now := g.Clock.Now()
	rec, err := g.Store.CreateCode(t.Context(), store.Code{
		Selector: selector, PINSecret: code.PINSecret, LinkSecret: code.LinkSecret,
		AutoApprove: autoApprove, CreatedAt: now, ExpiresAt: now.Add(ttl),
	})
	if err != nil {
		t.Fatal(err)
	}
	return code, rec
}
