package testnetns

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// absent is how long a datagram that should be dropped is waited for.
const absent = 300 * time.Millisecond

func TestRunPattern(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"TestA":          "^TestA$",
		"TestA/sub_case": "^TestA$/^sub_case$",
		"TestA/x+y":      `^TestA$/^x\+y$`,
	} {
		if got := runPattern(name); got != want {
			t.Errorf("runPattern(%q) = %q, want %q", name, got, want)
		}
	}
}

// Inside its namespace a test sees only its own loopback, and DropUDP
// and Allow change what reaches a socket there.
func TestDropAndAllow(t *testing.T) {
	if !Enter(t) {
		return
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Flags&net.FlagLoopback == 0 || ifaces[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces in the namespace: %+v, want only loopback, up", ifaces)
	}
	if os.Getenv(insideEnv) != t.Name() {
		t.Fatalf("%s = %q inside the namespace", insideEnv, os.Getenv(insideEnv))
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	received := func(wait time.Duration) bool {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = pc.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 16)
		_, _, err := pc.ReadFrom(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	}
	if !received(5 * time.Second) {
		t.Fatal("a datagram on loopback did not arrive")
	}
	DropUDP(t, port)
	if received(absent) {
		t.Fatal("a datagram arrived with its port's UDP dropped")
	}
	Allow(t)
	if !received(5 * time.Second) {
		t.Fatal("a datagram did not arrive once UDP was allowed again")
	}
}

// A benchmark runs inside its namespace too, and reports from there.
func BenchmarkInside(b *testing.B) {
	if !Enter(b) {
		return
	}
	ifaces, err := net.Interfaces()
	if err != nil || len(ifaces) != 1 {
		b.Fatalf("interfaces in the namespace: %+v, %v", ifaces, err)
	}
	for b.Loop() {
	}
	b.ReportMetric(float64(len(ifaces)), "interfaces")
}
