package testaddr

import (
	"net"
	"strconv"
	"testing"
)

// The address is on loopback, below the range the kernel draws ports
// from, and both its TCP and its UDP side can be bound.
func TestRestartableIsOutsideTheEphemeralRange(t *testing.T) {
	addr := Restartable(t)
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.1" || port < 1024 || port >= ephemeralLow() {
		t.Fatalf("%s is not a loopback port below %d", addr, ephemeralLow())
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	udp.Close()
	// A port taken on either side is passed over.
	if free(addr) {
		t.Fatalf("%s reported free while its TCP side is bound", addr)
	}
}
