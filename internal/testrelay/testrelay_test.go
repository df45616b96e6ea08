package testrelay

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer echoes TCP streams and UDP datagrams on one port of 127.0.0.1.
func echoServer(t *testing.T) string {
	t.Helper()
	tcp, udp := ListenPair(t)
	t.Cleanup(func() { tcp.Close(); udp.Close() })
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			udp.WriteTo(buf[:n], from)
		}
	}()
	return tcp.Addr().String()
}

const delay = 30 * time.Millisecond

// A stream arrives whole and in order, each way no sooner than the delay,
// and its end of stream comes through after its data.
func TestTCP(t *testing.T) {
	relay := Start(t, echoServer(t), delay)
	c, err := net.Dial("tcp", relay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var want bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	start := time.Now()
	go func() {
		c.Write(want.Bytes())
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*delay {
		t.Errorf("the echo came back after %v, sooner than the relay's delay both ways (%v)", took, 2*delay)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("echo differs: %d bytes back of %d", len(got), want.Len())
	}
}

// Datagrams come back in order, each no sooner than the delay both ways.
func TestUDP(t *testing.T) {
	relay := Start(t, echoServer(t), delay)
	c, err := net.Dial("udp", relay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	for i := range 10 {
		fmt.Fprintf(c, "datagram %d", i)
	}
	buf := make([]byte, 64)
	for i := range 10 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:n]), fmt.Sprintf("datagram %d", i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if took := time.Since(start); took < 2*delay {
		t.Errorf("the echoes came back after %v, sooner than the relay's delay both ways (%v)", took, 2*delay)
	}
}
