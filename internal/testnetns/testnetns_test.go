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

// DropShare drops about its share of the datagrams to the port and about
// its share of those from it.
func TestDropShare(t *testing.T) {
	if !Enter(t) {
		return
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	DropShare(t, pc.LocalAddr().(*net.UDPAddr).Port, 50)
	const sent = 400
	for range sent {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
	}
	// count reads until nothing more comes within absent.
	count := func(read func([]byte) error) int {
		n := 0
		buf := make([]byte, 16)
		for ; n < sent; n++ {
			if err := read(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				t.Fatal(err)
			}
		}
		return n
	}
	arrived := count(func(buf []byte) error {
		_ = pc.SetReadDeadline(time.Now().Add(absent))
		_, from, err := pc.ReadFrom(buf)
		if err == nil {
			_, err = pc.WriteTo([]byte("pong"), from)
		}
		return err
	})
	answered := count(func(buf []byte) error {
		_ = c.SetReadDeadline(time.Now().Add(absent))
		_, err := c.Read(buf)
		return err
	})
	// With half dropped each way, these bounds are 10 and 7 standard
	// deviations from what is expected.
	if arrived < sent/4 || arrived > sent*3/4 {
		t.Errorf("%d of %d datagrams to the port arrived with 50%% dropped", arrived, sent)
	}
	if answered < arrived/4 || answered > arrived*3/4 {
		t.Errorf("%d of %d answers from the port arrived with 50%% dropped", answered, arrived)
	}
}
