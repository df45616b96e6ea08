package quiccarrier_test

import (
	"io"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/quiccarrier"
	"github.com/palyra/palyra-go/internal/quicecho"
	"github.com/palyra/palyra-go/internal/testpki"
	"github.com/palyra/palyra-go/internal/testregistry"
	"github.com/palyra/palyra-go/internal/wire"
	nodequic "github.com/palyra/palyra-go/node/quiccarrier"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// renewalFrame is the frame both benchmarks send.
func renewalFrame(b *testing.B) []byte {
	f, err := wire.AppendFrame(nil, &nodev1.Frame{Body: &nodev1.Frame_LeaseRenewal{LeaseRenewal: &nodev1.LeaseRenewal{Sequence: 1 << 20}}})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkControlRoundTrip measures LeaseRenewal -> LeaseGranted on an open
// session: framing, decoding, the Registry call and the answer.
func BenchmarkControlRoundTrip(b *testing.B) {
	f := newFixture(b, time.Minute)
	_, str := f.rawClient(b, testpki.NewDevice(b, f.CA))
	register(b, str)
	_ = str.SetDeadline(time.Time{})
	frame := renewalFrame(b)
	var got nodev1.Frame
	b.ReportAllocs()
	for b.Loop() {
		if _, err := str.Write(frame); err != nil {
			b.Fatal(err)
		}
		if err := wire.ReadFrame(str, &got); err != nil {
			b.Fatal(err)
		}
		if got.GetLeaseGranted() == nil {
			b.Fatalf("got %v", &got)
		}
	}
}

// BenchmarkRawQUICEcho is the floor for BenchmarkControlRoundTrip: the same
// bytes echoed on an open quic-go stream with the same mTLS certificates,
// in the same process.
func BenchmarkRawQUICEcho(b *testing.B) {
	ca := testpki.NewCA(b, "bench")
	srv, err := quicecho.Listen(*testpki.ServerCert(b, ca), quiccarrier.ALPN)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client, err := quicecho.Dial(b.Context(), srv.Addr(), *testpki.NewDevice(b, ca).Cert, quiccarrier.ALPN)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	str, err := client.Stream(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	frame := renewalFrame(b)
	buf := make([]byte, len(frame))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := str.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(str, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeRoundTrip measures one call pushed to a node over QUIC: a
// new stream, Invoke, the node's handler, Result. BenchmarkRawQUICNewStream
// is its floor.
func BenchmarkInvokeRoundTrip(b *testing.B) {
	f := newFixture(b, time.Minute)
	d := testpki.NewDevice(b, f.CA)
	f.dialNode(b, d, testregistry.Echo)
	testregistry.BenchInvoke(b, f.srv.Invoke, d.ID())
}

// BenchmarkRawQUICNewStream is the floor for BenchmarkInvokeRoundTrip: a new
// quic-go stream per round trip, with the same number of bytes each way.
func BenchmarkRawQUICNewStream(b *testing.B) {
	ca := testpki.NewCA(b, "bench")
	srv, err := quicecho.Listen(*testpki.ServerCert(b, ca), quiccarrier.ALPN)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client, err := quicecho.Dial(b.Context(), srv.Addr(), *testpki.NewDevice(b, ca).Cert, quiccarrier.ALPN)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	msg, err := wire.AppendFrame(nil, &nodev1.Frame{Body: &nodev1.Frame_Invoke{Invoke: &nodev1.Invoke{
		RequestId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Capability: "bench.echo", ArgsJson: []byte(`{"n":1}`),
	}}})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, len(msg))
	b.ReportAllocs()
	for b.Loop() {
		if err := client.RoundTripNewStream(b.Context(), msg, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnect measures one node's return, one after the other: the
// QUIC handshake with both certificates checked, the control stream, the
// registration and the Welcome, then the close (both ends in this
// process; the runtime records in memory, no store). One at a time, its
// time per connect is about its CPU time, which carrier.ReconnectWindow
// counts a node's return as.
func BenchmarkConnect(b *testing.B) {
	f := newFixture(b, time.Minute)
	cfg := f.sessionConfig(testpki.NewDevice(b, f.CA))
	go func() { // the runtime's record of each registration and end
		for {
			select {
			case <-f.Runtime.Registered:
			case <-f.Runtime.Gone:
			case <-b.Context().Done():
				return
			}
		}
	}()
	start := time.Now()
	for b.Loop() {
		c, err := nodequic.Dial(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
	b.ReportMetric(float64(time.Since(start))/float64(b.N)/float64(time.Millisecond), "ms/connect")
}
