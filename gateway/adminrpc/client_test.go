package adminrpc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/palyra/palyra-go/gateway/admin"
	"github.com/palyra/palyra-go/gateway/adminrpc"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/internal/testlog"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// manyNodes is a store whose node listing is nodes.
type manyNodes struct {
	admin.Store
	nodes []store.Node
}

func (m manyNodes) ListNodes(context.Context) ([]store.Node, error) { return m.nodes, nil }

// countingConn counts the bytes the client writes.
type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.written.Add(int64(len(b)))
	return c.Conn.Write(b)
}

// TestDialOptionsTakeAListingInOneFlight: with DialOptions a listing of
// 20,000 nodes (about 2 MB) comes without the client granting the gateway
// more window on the way; with gRPC's defaults the client writes a window
// update (a dozen bytes, and as many for the connection) time and again
// on the way, each of which the gateway waits for.
// serveManyNodes serves an admin API whose store lists n nodes, and
// returns its socket.
func serveManyNodes(t testing.TB, n int) string {
	t.Helper()
	nodes := make([]store.Node, n)
	for i := range nodes {
		var seed [ed25519.SeedSize]byte
		binary.BigEndian.PutUint32(seed[:], uint32(i))
		pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
		nodes[i] = store.Node{DeviceID: identity.DeviceIDFromPublicKey(pub), Name: fmt.Sprintf("laptop-%05d", i), Platform: "linux/amd64", Version: "1.0.0"}
	}
	h := start(t)
	svc, err := admin.New(admin.Config{
		Store:     manyNodes{Store: h.store, nodes: nodes},
		Sessions:  h.sessions,
		Addresses: func() []string { return advertised },
		Rand:      rand.Reader,
		Logger:    testlog.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, svc)
}

func TestDialOptionsTakeAListingInOneFlight(t *testing.T) {
	const n = 20_000
	socket := serveManyNodes(t, n)

	// written is what the client wrote during its second listing: the
	// first set the connection up.
	written := func(opts ...grpc.DialOption) int64 {
		var count atomic.Int64
		dial := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
			return countingConn{c, &count}, err
		})
		conn, err := grpc.NewClient("passthrough:///admin", append(opts, dial)...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := adminv1.NewAdminClient(conn)
		var got int64
		for i := range 2 {
			before := count.Load()
			resp, err := client.ListNodes(t.Context(), &adminv1.ListNodesRequest{})
			if err != nil || len(resp.GetNodes()) != n {
				t.Fatalf("ListNodes: %d nodes, %v; want %d", len(resp.GetNodes()), err, n)
			}
			if i == 1 {
				got = count.Load() - before
			}
		}
		return got
	}
	withDefaults := written(grpc.WithTransportCredentials(insecure.NewCredentials()))
	withOptions := written(adminrpc.DialOptions()...)
	t.Logf("client wrote %d bytes in a listing with gRPC's defaults, %d with DialOptions", withDefaults, withOptions)
	// The request itself is about 50 bytes.
	if withDefaults < withOptions+100 {
		t.Fatalf("with gRPC's defaults the client wrote only %d bytes in a listing of %d nodes: the test no longer shows window updates", withDefaults, n)
	}
	if withOptions > 100 {
		t.Errorf("with DialOptions the client wrote %d bytes in a listing (gRPC's defaults: %d): it granted window on the way", withOptions, withDefaults)
	}
}

// BenchmarkListNodes lists 10,000 nodes through the admin socket, both
// ends in this process: what the API adds to the store's listing
// (store.BenchmarkListNodes), as `palyra bench` asks for it every 100 ms
// through a storm.
func BenchmarkListNodes(b *testing.B) {
	const n = 10_000
	socket := serveManyNodes(b, n)
	conn, err := grpc.NewClient("unix://"+socket, adminrpc.DialOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := adminv1.NewAdminClient(conn)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.ListNodes(b.Context(), &adminv1.ListNodesRequest{})
		if err != nil || len(resp.GetNodes()) != n {
			b.Fatalf("ListNodes: %d nodes, %v; want %d", len(resp.GetNodes()), err, n)
		}
	}
}
