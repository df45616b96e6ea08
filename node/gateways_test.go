package node

import (
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/internal/wire"
)

var fourGateways = []string{"10.0.0.1:7443", "10.0.0.2:7443", "10.0.0.3:7443", "gw4.example:7443"}

// Many nodes with the same addresses each dial them in an order of their
// own: every order is a permutation of the addresses, and each address is
// some nodes' first, about as often as the others.
func TestDialOrderIsRandomPermutation(t *testing.T) {
	t.Parallel()
	const nodes = 400
	seed := mathrand.New(mathrand.NewPCG(1, 2))
	first := map[string]int{}
	orders := map[string]bool{}
	for range nodes {
		o := newAddressOrder(mathrand.New(mathrand.NewPCG(seed.Uint64(), seed.Uint64())))
		got := o.next(fourGateways)
		if !sameAddresses(got, fourGateways) || len(got) != len(fourGateways) {
			t.Fatalf("order %v is not a permutation of %v", got, fourGateways)
		}
		if again := o.next(slices.Clone(fourGateways)); !slices.Equal(again, got) {
			t.Fatalf("the order changed with the same addresses: %v, then %v", got, again)
		}
		first[got[0]]++
		orders[strings.Join(got, " ")] = true
	}
	for _, a := range fourGateways {
		// Expected 100 each; 60 is far beyond chance for a fair shuffle.
		if n := first[a]; n < 60 {
			t.Errorf("%s was the first address of %d of %d nodes: %v", a, n, nodes, first)
		}
	}
	if len(orders) < 20 { // of the 24 permutations
		t.Errorf("only %d different orders among %d nodes", len(orders), nodes)
	}
}

// An attempt after a failure starts past the address that failed, also
// when the addresses changed meanwhile (the failed session's Welcome had
// named new ones); the other addresses keep their order.
func TestDialOrderRotatesPastFailed(t *testing.T) {
	t.Parallel()
	o := newAddressOrder(mathrand.New(mathrand.NewPCG(3, 4)))
	start := o.next(fourGateways)
	o.pass(start[0])
	want := append(slices.Clone(start[1:]), start[0])
	if got := o.next(fourGateways); !slices.Equal(got, want) {
		t.Fatalf("after %s failed: %v, want %v", start[0], got, want)
	}
	o.pass(want[0])
	if got := o.next(fourGateways); got[len(got)-1] != want[0] || got[0] != want[1] {
		t.Fatalf("after %s failed too: %v", want[0], got)
	}

	failed := start[2]
	o.pass(failed)
	grown := append(slices.Clone(fourGateways), "10.0.0.5:7443")
	got := o.next(grown)
	if !sameAddresses(got, grown) || got[len(got)-1] != failed {
		t.Fatalf("with a new address, after %s failed: %v, want it last", failed, got)
	}
	if got := o.next([]string{"10.0.0.9:7443"}); !slices.Equal(got, []string{"10.0.0.9:7443"}) {
		t.Fatalf("one new address: %v", got)
	}
	if got := o.next(nil); got != nil {
		t.Fatalf("no addresses: %v", got)
	}
}

func TestWelcomeAddresses(t *testing.T) {
	t.Parallel()
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("10.0.1.%d:7443", i+1)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		named     []string
		connected string
		want      []string
		err       string
	}{
		{name: "none named", named: nil, connected: "10.0.0.1:7443", want: nil},
		{name: "connected named", named: fourGateways, connected: fourGateways[2], want: fourGateways},
		{name: "duplicates", named: []string{"a.example:1", "a.example:1", "b.example:2"}, connected: "b.example:2",
			want: []string{"a.example:1", "b.example:2"}},
		{name: "connected not named", named: []string{"10.0.0.2:7443"}, connected: "gw.local:7443",
			want: []string{"gw.local:7443", "10.0.0.2:7443"}},
		{name: "full, connected not named", named: many(wire.MaxGatewayAddresses), connected: "gw.local:7443",
			want: append([]string{"gw.local:7443"}, many(wire.MaxGatewayAddresses-1)...)},
		{name: "too many", named: many(wire.MaxGatewayAddresses + 1), connected: "10.0.1.1:7443", err: "more than 16 gateway addresses (17)"},
		{name: "no port", named: []string{"10.0.0.2:7443", "10.0.0.3"}, connected: "10.0.0.2:7443", err: `"10.0.0.3" is not HOST:PORT`},
		{name: "bad host", named: []string{"bad host:7443"}, connected: "10.0.0.2:7443", err: "no valid host name"},
		{name: "port 0", named: []string{"10.0.0.3:0"}, connected: "10.0.0.2:7443", err: "no valid port"},
	} {
		got, err := welcomeAddresses(tc.named, tc.connected)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, %v; want an error saying %q", tc.name, got, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !slices.Equal(got, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzWelcomeAddresses: whatever a gateway names, the node keeps at most
// wire.MaxGatewayAddresses valid addresses, each once, always with the
// one it is connected to, or refuses the list.
func FuzzWelcomeAddresses(f *testing.F) {
	f.Add("10.0.0.1:7443\n10.0.0.2:7443\n[::1]:7443", "10.0.0.1:7443")
	f.Add("gw.example:1\ngw.example:1", "other.example:2")
	f.Add(strings.Repeat("10.0.0.1:7443\n", 20), "10.0.0.9:7443")
	f.Add("x:99999\n:1", "10.0.0.1:7443")
	f.Fuzz(func(t *testing.T, list, connected string) {
		if pairing.CheckAddress(connected) != nil {
			return // the node dialed it from its own list
		}
		var named []string
		if list != "" {
			named = strings.Split(list, "\n")
		}
		got, err := welcomeAddresses(named, connected)
		if err != nil {
			if got != nil {
				t.Fatalf("refused (%v) but kept %v", err, got)
			}
			if !errors.Is(err, errTooManyAddresses) && !strings.Contains(err.Error(), "gateway address") {
				t.Fatalf("a refusal that does not say what is wrong: %v", err)
			}
			return
		}
		if len(named) == 0 {
			if got != nil {
				t.Fatalf("none named, kept %v", got)
			}
			return
		}
		if len(got) > wire.MaxGatewayAddresses || !slices.Contains(got, connected) {
			t.Fatalf("kept %d addresses %v (connected %q)", len(got), got, connected)
		}
		for i, a := range got {
			if err := pairing.CheckAddress(a); err != nil {
				t.Fatalf("kept an invalid address: %v", err)
			}
			if slices.Contains(got[i+1:], a) {
				t.Fatalf("kept %q twice: %v", a, got)
			}
		}
	})
}
