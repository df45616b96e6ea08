package node

import (
	"fmt"
	mathrand "math/rand/v2"
	"slices"

	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node/carrier"
)

// addressOrder is the order in which a node tries its gateways'
// addresses: a random permutation, so that the nodes of a cluster spread
// over its gateways instead of all taking the first address, kept while
// the addresses stay the same. Each attempt starts past the address that
// failed last, so a node whose gateway died tries the others before it.
type addressOrder struct {
	rand *mathrand.Rand
	perm []string
	// start is where in perm the next attempt begins; failed is the
	// address it begins after.
	start  int
	failed string
}

func newAddressOrder(r *mathrand.Rand) *addressOrder {
	if r == nil {
		r = mathrand.New(mathrand.NewPCG(mathrand.Uint64(), mathrand.Uint64()))
	}
	return &addressOrder{rand: r}
}

// next is the order in which to try addrs now.
func (o *addressOrder) next(addrs []string) []string {
	if !sameAddresses(o.perm, addrs) {
		o.perm = slices.Clone(addrs)
		o.rand.Shuffle(len(o.perm), func(i, j int) { o.perm[i], o.perm[j] = o.perm[j], o.perm[i] })
		o.start = 0
		o.pass(o.failed)
	}
	if len(o.perm) == 0 {
		return nil
	}
	return append(slices.Clone(o.perm[o.start:]), o.perm[:o.start]...)
}

// pass makes the next attempt begin after addr, which failed (a dial that
// found no address answering failed at the first it tried; a session
// lost its gateway).
func (o *addressOrder) pass(addr string) {
	o.failed = addr
	if i := slices.Index(o.perm, addr); i >= 0 {
		o.start = (i + 1) % len(o.perm)
	}
}

// sameAddresses reports whether a and b hold the same addresses, in any
// order.
func sameAddresses(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// errTooManyAddresses refuses a Welcome that names more addresses than a
// node keeps.
var errTooManyAddresses = fmt.Errorf("the gateway named more than %d gateway addresses", wire.MaxGatewayAddresses)

// welcomeAddresses are the addresses a node keeps from a Welcome that
// named named, received over a session dialed at connected: every named
// address once, and connected, which the node knows works, even if the
// gateway did not name it (a bound address the gateway advertises under
// another name, say), in place of the last named one if they are too
// many. nil: the gateway named none, and the node keeps what it has. A
// Welcome that names more than wire.MaxGatewayAddresses, or an address
// that is not HOST:PORT, is refused as a whole: such a gateway is not
// trusted with the rest of the list either.
func welcomeAddresses(named []string, connected string) ([]string, error) {
	if len(named) == 0 {
		return nil, nil
	}
	if len(named) > wire.MaxGatewayAddresses {
		return nil, fmt.Errorf("%w (%d)", errTooManyAddresses, len(named))
	}
	out := make([]string, 0, len(named)+1)
	for _, a := range named {
		if err := pairing.CheckAddress(a); err != nil {
			return nil, err
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if connected != "" && !slices.Contains(out, connected) {
		if len(out) == wire.MaxGatewayAddresses {
			out = out[:len(out)-1]
		}
		out = append([]string{connected}, out...)
	}
	return out, nil
}

// learnAddresses keeps the gateway addresses conn's Welcome named, with
// the one conn is connected to, as the addresses this node dials from
// its next attempt on, when they differ from those it has. node.json is
// replaced atomically, so a crash leaves the old list or the new one.
func (a *Agent) learnAddresses(conn carrier.Conn) {
	addrs, err := welcomeAddresses(conn.Welcome().GetGatewayAddresses(), conn.Address())
	if err != nil {
		a.cfg.Logger.Warn("ignoring the gateway addresses the gateway named", "err", err)
		return
	}
	if addrs == nil {
		return
	}
	a.confMu.Lock()
	defer a.confMu.Unlock()
	a.mu.Lock()
	conf, paired := a.conf, a.cert != nil
	a.mu.Unlock()
	if !paired || sameAddresses(conf.Gateways, addrs) {
		return
	}
	old := conf.Gateways
	conf.Gateways = addrs
	if err := a.writeJSON(ConfigFile, conf); err != nil {
		a.cfg.Logger.Error("keeping the gateway addresses the gateway named", "err", err)
		return
	}
	a.mu.Lock()
	a.conf.Gateways = addrs
	a.mu.Unlock()
	a.update(func(s *Status) { s.Gateways = addrs })
	a.cfg.Logger.Info("the gateway addresses changed", "gateways", addrs, "were", old)
}
