package gateway

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// TestWildcardAddresses picks, from a made-up interface list, the
// addresses another machine could dial: no loopback, no link-local (it
// would need a zone), IPv4 only for 0.0.0.0; a specific listen address is
// left alone.
func TestWildcardAddresses(t *testing.T) {
	ifaces := func() ([]net.Addr, error) {
		var out []net.Addr
		for _, p := range []string{"127.0.0.1/8", "::1/128", "192.0.2.10/24", "169.254.1.1/16", "fe80::1/64", "2001:db8::5/64"} {
			ip, n, err := net.ParseCIDR(p)
			if err != nil {
				t.Fatal(err)
			}
			n.IP = ip
			out = append(out, n)
		}
		return out, nil
	}
	for _, tt := range []struct {
		listen string
		want   []string
	}{
		{"[::]:7443", []string{"192.0.2.10", "2001:db8::5"}},
		{":7443", []string{"192.0.2.10", "2001:db8::5"}},
		{"0.0.0.0:7443", []string{"192.0.2.10"}},
		{"127.0.0.1:7443", nil},
		{"gw.example:7443", nil},
	} {
		got, err := wildcardAddresses(tt.listen, ifaces)
		if err != nil {
			t.Fatalf("%s: %v", tt.listen, err)
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if !slices.Equal(s, tt.want) {
			t.Errorf("%s: %v, want %v", tt.listen, s, tt.want)
		}
	}
	onlyLoopback := func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)}, &net.IPNet{IP: net.ParseIP("2001:db8::5"), Mask: net.CIDRMask(64, 128)}}, nil
	}
	if _, err := wildcardAddresses("0.0.0.0:7443", onlyLoopback); err == nil || !strings.Contains(err.Error(), "--advertise HOST:PORT") {
		t.Errorf("0.0.0.0 with no IPv4 address but loopback: %v, want the hint to pass --advertise", err)
	}
}
