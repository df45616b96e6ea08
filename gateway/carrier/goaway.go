package carrier

import (
	"runtime"
	"time"
)

// How the window a shutting-down gateway gives its nodes is sized: its n
// nodes come back to the next gateway at returnCost each, shared among the
// cores (GOMAXPROCS), and the window leaves room for returnHeadroom times
// that (the next gateway's own start, the calls it serves meanwhile, its
// store's writes, nodes that come back in a clump). returnCost is one
// node's return as BenchmarkConnect (gateway/quiccarrier) measured it:
// the QUIC handshake with both certificates checked, the control stream
// and the registration, one after the other, both ends in one process on
// a 2-core machine: 1.4 ms. The gateway's half of that plus its store
// write is about as much. So 10,000 nodes on 2 cores get 15 s, and a
// gateway with a handful of nodes the minimum, 2 s: about what the old
// gateway may take to be gone (the nodes are given a second to close).
const (
	returnCost         = 1500 * time.Microsecond
	returnHeadroom     = 2
	minReconnectWindow = 2 * time.Second
	maxReconnectWindow = time.Minute
)

// ReconnectWindow is the window n nodes are asked to reconnect within.
func ReconnectWindow(n int) time.Duration {
	w := time.Duration(n) * returnCost * returnHeadroom / time.Duration(runtime.GOMAXPROCS(0))
	return min(max(w, minReconnectWindow), maxReconnectWindow)
}
