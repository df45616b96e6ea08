// Package testaddr gives tests a loopback address a gateway can stop on
// and start on again.
//
// A port the kernel hands out for "port 0" comes from the ephemeral range,
// the same range it draws the source ports of outgoing connections from.
// Once a gateway on such a port stops, any connection another test opens
// meanwhile may take the port, and the restart fails with "address already
// in use"; a node redialling the stopped port over TCP can even connect to
// itself. Ports below the ephemeral range are only ever taken by an
// explicit bind.
package testaddr

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// defaultEphemeralLow is where Linux's ephemeral range starts by default;
// Windows and macOS start theirs at 49152, higher still.
const defaultEphemeralLow = 32768

// Restartable returns "127.0.0.1:PORT" with a port outside the ephemeral
// range whose TCP and UDP sides were both free just now.
func Restartable(tb testing.TB) string {
	tb.Helper()
	high := ephemeralLow()
	low := high / 2
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(low+rand.IntN(high-low)))
		if free(addr) {
			return addr
		}
	}
	tb.Fatalf("no free loopback port in [%d, %d) after 200 draws", low, high)
	return ""
}

func free(addr string) bool {
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	return udp.Close() == nil
}

// ephemeralLow reads where Linux starts its ephemeral ports; elsewhere,
// or if it cannot be read, the Linux default.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLow
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return defaultEphemeralLow
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low < 2048 || low > defaultEphemeralLow*2 {
		return defaultEphemeralLow
	}
	return low
}
