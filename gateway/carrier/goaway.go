package carrier

import (
	"runtime"
	"time"
)

// How the window a shutting-down gateway gives its nodes is sized: its n
// nodes come back to the next gateway at returnCost each, shared among the
// cores (GOMAXPROCS), and the window leaves room for returnHeadroom times
// that (the next gateway's own start, the calls it serves meanwhile, its
// store's writes, nodes that come back in a clump). returnCost is the
// gateway's share of one node's return when thousands come back at once:
// the QUIC handshake with the node's certificate checked, the control
// stream, the registration and its store writes. `palyra bench --phases
// storm --nodes 5000` on a 2-core machine spent 4.6 ms of CPU per return
// on both ends together, besides what the connected nodes cost meanwhile;
// the gateway's half is about 2.3 ms. With nodes that tried again within
// 2 s after a failed attempt, windows of 15 s and 20 s for those 5,000
// (the nodes' half on the same cores) had them all back in 18 s and 21 s,
// where 7.5 s (sized for 1.5 ms) crowded the gateway: 25 s, and a third
// more CPU spent on handshakes that timed out and were tried again.
// So 10,000 nodes on 2 cores get 25 s, and a gateway with a handful of
// nodes the minimum, 2 s: about what the old gateway may take to be gone
// (the nodes are given a second to close).
const (
	returnCost         = 2500 * time.Microsecond
	returnHeadroom     = 2
	minReconnectWindow = 2 * time.Second
	maxReconnectWindow = time.Minute
)

// ReconnectWindow is the window n nodes are asked to reconnect within.
func ReconnectWindow(n int) time.Duration {
	w := time.Duration(n) * returnCost * returnHeadroom / time.Duration(runtime.GOMAXPROCS(0))
	return min(max(w, minReconnectWindow), maxReconnectWindow)
}
