package gateway_test

import (
	"net"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/gateway"
)

// ListenTCPAndUDP gives one port for both, and says which half it could
// not have when the port asked for is taken on UDP only.
func TestListenTCPAndUDP(t *testing.T) {
	t.Parallel()
	tcp, udp, err := gateway.ListenTCPAndUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := tcp.Addr().(*net.TCPAddr).Port
	if got := udp.LocalAddr().(*net.UDPAddr).Port; got != port || port == 0 {
		t.Errorf("TCP on port %d, UDP on %d: want one port", port, got)
	}
	tcp.Close()
	// The UDP half stays taken: the same port again fails on UDP, and the
	// TCP listener of the failed try is given back.
	addr := tcp.Addr().String()
	if _, _, err := gateway.ListenTCPAndUDP(addr); err == nil || !strings.Contains(err.Error(), "listening on UDP "+addr) {
		t.Errorf("ListenTCPAndUDP(%s) with its UDP port taken = %v, want an error that names UDP", addr, err)
	}
	udp.Close()
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the TCP port of the failed try was not given back: %v", err)
	}
	again.Close()
	if _, _, err := gateway.ListenTCPAndUDP("127.0.0.1"); err == nil {
		t.Error("an address without a port was accepted")
	}
}
