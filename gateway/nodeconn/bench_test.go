package nodeconn_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/palyra/palyra-go/gateway/nodeconn"
	"github.com/palyra/palyra-go/internal/wire"
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
	_, str := f.rawClient(b, newDevice(b, f.ca))
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
	ca := newCA(b, "bench")
	srvCert := serverCert(b, ca)
	dev := newDevice(b, ca)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	tr := &quic.Transport{Conn: pc}
	defer tr.Close()
	ln, err := tr.Listen(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{nodeconn.ALPN},
		ClientAuth:   tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{*srvCert},
	}, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	frame := renewalFrame(b)
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		conn, err := ln.Accept(b.Context())
		if err != nil {
			return
		}
		str, err := conn.AcceptStream(b.Context())
		if err != nil {
			return
		}
		buf := make([]byte, len(frame))
		for {
			if _, err := io.ReadFull(str, buf); err != nil {
				return
			}
			if _, err := str.Write(buf); err != nil {
				return
			}
		}
	}()
	conn, err := quic.DialAddr(b.Context(), pc.LocalAddr().String(), &tls.Config{
		MinVersion:           tls.VersionTLS13,
		NextProtos:           []string{nodeconn.ALPN},
		InsecureSkipVerify:   true, // benchmark baseline against our own server
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return dev.cert, nil },
	}, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	str, err := conn.OpenStreamSync(b.Context())
	if err != nil {
		b.Fatal(err)
	}
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
	b.StopTimer()
	_ = conn.CloseWithError(0, "")
	<-echoDone
	_ = ln.Close()
}
