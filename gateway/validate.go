package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/palyra/palyra-go/internal/metrics"
)

// validate checks the addresses of cfg before New writes anything, so that a
// mistyped flag leaves no data directory or CA behind.
func validate(cfg Config) error {
	if cfg.TCPListener == nil {
		if _, err := splitHostPort(cfg.Listen); err != nil {
			return fmt.Errorf("gateway: listen address %q: %w", cfg.Listen, err)
		}
	}
	for _, a := range cfg.Advertise {
		host, err := splitHostPort(a)
		if err != nil {
			return fmt.Errorf("gateway: advertised address %q: %w", a, err)
		}
		if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
			return fmt.Errorf("gateway: advertised address %q names no host nodes could dial: give this machine's address or name", a)
		}
		if _, port, _ := net.SplitHostPort(a); port == "0" {
			return fmt.Errorf("gateway: advertised address %q has port 0: give the port nodes should dial", a)
		}
	}
	if cfg.AdminListener == nil && cfg.AdminSocket == "" {
		return errors.New("gateway: an admin socket path is required")
	}
	if cfg.MetricsListen != "" {
		if err := metrics.CheckLoopback(cfg.MetricsListen); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	return nil
}

// splitHostPort is net.SplitHostPort with the port checked to be a number
// that fits.
func splitHostPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("want HOST:PORT, such as 127.0.0.1:7443 or [::1]:7443: %w", err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return "", fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return host, nil
}

// wildcardAddresses is what a gateway listening on every interface (host
// 0.0.0.0, :: or empty) tells nodes when no address is advertised: this
// machine's addresses that another machine could dial (not loopback, not
// link-local, which would need a zone), IPv4 only for 0.0.0.0. It returns
// nil for a listen address that is not a wildcard, and an error, with the
// hint to advertise, when there is no such address.
func wildcardAddresses(listen string, interfaceAddrs func() ([]net.Addr, error)) ([]netip.Addr, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(host)
	if host != "" && (err != nil || !ip.IsUnspecified()) {
		return nil, nil
	}
	onlyV4 := host != "" && ip.Is4()
	addrs, err := interfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("gateway: listening on every interface (%s), and the machine's addresses cannot be read to tell nodes where to connect (%w): pass the address nodes should dial with --advertise HOST:PORT", listen, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		var p netip.Prefix
		switch a := a.(type) {
		case *net.IPNet:
			addr, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			p = netip.PrefixFrom(addr.Unmap(), 0)
		default:
			if p, err = netip.ParsePrefix(a.String()); err != nil {
				continue
			}
		}
		addr := p.Addr().Unmap()
		if addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsUnspecified() || addr.IsMulticast() || (onlyV4 && !addr.Is4()) {
			continue
		}
		out = append(out, addr)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("gateway: listening on every interface (%s), but this machine has no address other machines could dial (only loopback or link-local ones): pass the address nodes should dial with --advertise HOST:PORT, or listen on 127.0.0.1 for this machine alone", listen)
	}
	return out, nil
}
