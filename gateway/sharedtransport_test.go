package gateway_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/quiccarrier"
)

// udpSockets maps the inodes of this process's UDP sockets to their
// local ports, from /proc/self/fd and /proc/net/udp{,6}.
func udpSockets(t *testing.T) map[string]int {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	out := map[string]int{}
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !mine[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("%s: local address %q: %v", table, fields[1], err)
			}
			out[fields[9]] = int(port)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// newUDPSockets runs start, waits for connected, and returns the local
// ports of the UDP sockets the process opened meanwhile.
func newUDPSockets(t *testing.T, start func()) []int {
	t.Helper()
	before := udpSockets(t)
	start()
	var ports []int
	for inode, port := range udpSockets(t) {
		if _, ok := before[inode]; !ok {
			ports = append(ports, port)
		}
	}
	return ports
}

// TestSharedQUICTransport: agents given one quiccarrier.Transport connect
// over QUIC on its one UDP socket and are invoked; one of them stopping
// leaves the other's session up. Agents without one open a socket each,
// which the count tells apart. Not parallel: it counts the process's
// sockets, which other tests would change.
func TestSharedQUICTransport(t *testing.T) {
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil)
	tr, err := quiccarrier.NewTransport("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trPort := tr.LocalAddr().(*net.UDPAddr).Port
	shared := func(c *node.Config) { c.QUICTransport = tr }
	caps := []capability.Capability{echoCapability}
	a := pairedAgent(t, rg, "shared-a", caps, 0, shared)
	b := pairedAgent(t, rg, "shared-b", caps, 0, shared)
	own := pairedAgent(t, rg, "own-socket", caps, 0)

	connected := func(a *node.Agent) node.Status {
		return waitFor(t, a, 20*time.Second, "connected over QUIC", func(s node.Status) bool {
			return s.State == node.StateConnected && s.Transport == wire.TransportQUIC
		})
	}
	var stopA, stopB func() error
	ports := newUDPSockets(t, func() {
		// Each once: the deferred stop must not wait for a second end.
		stopA, stopB = sync.OnceValue(runAgent(a)), sync.OnceValue(runAgent(b))
		connected(a)
		connected(b)
	})
	defer stopA()
	defer stopB()
	if len(ports) != 0 {
		t.Errorf("two agents on a shared transport opened UDP sockets on ports %v; want none beside the transport's (%d)", ports, trPort)
	}
	if sockets := udpSockets(t); !mapHasValue(sockets, trPort) {
		t.Fatalf("the shared transport's socket (port %d) is not among the process's UDP sockets %v", trPort, sockets)
	}
	// The control: an agent of its own opens a socket, so the count above
	// would have seen the shared agents' sockets if they had had any.
	var stopOwn func() error
	ports = newUDPSockets(t, func() {
		stopOwn = runAgent(own)
		connected(own)
	})
	if err := stopOwn(); err != nil {
		t.Fatal(err)
	}
	if len(ports) != 1 {
		t.Errorf("an agent without a shared transport opened UDP sockets on ports %v; want one", ports)
	}

	invoke := func(who *node.Agent) {
		t.Helper()
		inv := gateway.Invocation{DeviceID: who.Status().DeviceID, Capability: echoCapability.Spec.Name, Args: []byte(`{"who":1}`)}
		res, err := rg.g.Invoke(t.Context(), inv)
		if err != nil || !res.OK || string(res.Output) != `{"who":1}` {
			t.Fatalf("invoking %s: %+v %v", who.Status().DeviceName, res, err)
		}
	}
	invoke(a)
	invoke(b)
	bSince := b.Status().ConnectedSince

	// Stopping a closes its session, not the socket b's runs on.
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, rg, a.Status().DeviceID, false)
	invoke(b)
	if st := b.Status(); st.State != node.StateConnected || !st.ConnectedSince.Equal(bSince) {
		t.Errorf("b's session did not survive a's stop: %+v (connected since %v before)", st, bSince)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("closing the shared transport: %v", err)
	}
}

func mapHasValue(m map[string]int, v int) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}
