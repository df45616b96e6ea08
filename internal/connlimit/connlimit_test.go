package connlimit_test

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/connlimit"
	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testclock"
)

var (
	sourceA = netip.MustParsePrefix("192.0.2.1/32")
	sourceB = netip.MustParsePrefix("2001:db8:1:2::/64")
)

func newLimiter(t *testing.T, cfg connlimit.Config) *connlimit.Limiter {
	t.Helper()
	l, err := connlimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAcquire(t *testing.T, l *connlimit.Limiter, src netip.Prefix) *connlimit.Slot {
	t.Helper()
	s, err := l.Acquire(src)
	if err != nil {
		t.Fatalf("acquiring a slot for %v: %v", src, err)
	}
	return s
}

// refusedBy checks that acquiring for src is refused by reason, with the
// message given.
func refusedBy(t *testing.T, l *connlimit.Limiter, src netip.Prefix, reason connlimit.Reason, msg string) {
	t.Helper()
	s, err := l.Acquire(src)
	var re *connlimit.RefusedError
	if s != nil || !errors.Is(err, connlimit.ErrRefused) || !errors.As(err, &re) || re.Reason != reason || err.Error() != msg {
		t.Fatalf("acquiring for %v: %v, %v; want refused (%s) with %q", src, s, err, reason, msg)
	}
}

func TestLimiterCaps(t *testing.T) {
	t.Parallel()
	var reasons []connlimit.Reason
	l := newLimiter(t, connlimit.Config{What: "test connections", Max: 3, MaxPerSource: 2,
		Refused: func(r connlimit.Reason) { reasons = append(reasons, r) }})

	a1 := mustAcquire(t, l, sourceA)
	a2 := mustAcquire(t, l, sourceA)
	refusedBy(t, l, sourceA, connlimit.PerSource, "refused: 192.0.2.1/32 already holds 2 test connections, the most one source may hold")
	b1 := mustAcquire(t, l, sourceB)
	refusedBy(t, l, sourceB, connlimit.Total, "refused: 3 test connections are open, the most allowed at once")
	// A client of unknown source counts towards the total only.
	refusedBy(t, l, netip.Prefix{}, connlimit.Total, "refused: 3 test connections are open, the most allowed at once")
	// Over both caps, the source is told it is over its share.
	refusedBy(t, l, sourceA, connlimit.PerSource, "refused: 192.0.2.1/32 already holds 2 test connections, the most one source may hold")
	if n := l.Held(); n != 3 {
		t.Fatalf("Held() = %d with three slots taken", n)
	}

	// Releasing twice gives one slot back, not two.
	a1.Release()
	a1.Release()
	if n := l.Held(); n != 2 {
		t.Fatalf("Held() = %d after one release", n)
	}
	a3 := mustAcquire(t, l, sourceA)
	refusedBy(t, l, sourceA, connlimit.PerSource, "refused: 192.0.2.1/32 already holds 2 test connections, the most one source may hold")

	for _, s := range []*connlimit.Slot{a2, a3, b1} {
		s.Release()
	}
	(*connlimit.Slot)(nil).Release()
	if n := l.Held(); n != 0 {
		t.Fatalf("Held() = %d after every release", n)
	}
	// Every source starts again from nothing.
	for _, src := range []netip.Prefix{sourceA, sourceA, sourceB} {
		mustAcquire(t, l, src)
	}
	want := []connlimit.Reason{connlimit.PerSource, connlimit.Total, connlimit.Total, connlimit.PerSource, connlimit.PerSource}
	if !slices.Equal(reasons, want) {
		t.Fatalf("Refused heard %v, want %v", reasons, want)
	}
}

func TestLimiterNoCaps(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, connlimit.Config{What: "test connections"})
	for range 1000 {
		mustAcquire(t, l, sourceA)
	}
	if n := l.Held(); n != 1000 {
		t.Fatalf("Held() = %d", n)
	}
	if _, err := connlimit.New(connlimit.Config{What: "test connections", Max: -1}); err == nil ||
		err.Error() != "connlimit: caps of test connections must not be negative (-1, 0 per source)" {
		t.Fatalf("a negative cap: %v", err)
	}
}

// TestLimiterLogs: the first refusal is logged at once, later ones at most
// once a minute, each line with the count since the line before.
func TestLimiterLogs(t *testing.T) {
	t.Parallel()
	var out syncbuf.Buffer
	clock := testclock.New()
	l := newLimiter(t, connlimit.Config{What: "test connections", Max: 1, Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: dropTime}))})
	mustAcquire(t, l, sourceA)
	for range 5 {
		_, _ = l.Acquire(sourceB)
		clock.Advance(10 * time.Second)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := `level=WARN msg="refused: 1 test connections are open, the most allowed at once" cap=total held=1 refused_since_last_line=1 next_line_after=1m0s`
	if len(lines) != 1 || lines[0] != want {
		t.Fatalf("after five refusals within a minute the log says:\n%s\nwant one line:\n%s", out.String(), want)
	}
	clock.Advance(10 * time.Second)
	_, _ = l.Acquire(sourceB)
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], " refused_since_last_line=5 ") {
		t.Fatalf("a minute after the first line the log says:\n%s\nwant a second line counting 5", out.String())
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr net.Addr
		want string // "" for an invalid prefix
	}{
		{"IPv4 over TCP", &net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 4000}, "127.0.0.2/32"},
		{"IPv4 over UDP", &net.UDPAddr{IP: net.ParseIP("198.51.100.7"), Port: 443}, "198.51.100.7/32"},
		{"IPv4-mapped IPv6", &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.9"), Port: 1}, "192.0.2.9/32"},
		{"IPv6 keeps its /64", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), Port: 1}, "2001:db8:1:2::/64"},
		{"another address in the same /64", &net.UDPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 2}, "2001:db8:1:2::/64"},
		{"the next /64", &net.UDPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 2}, "2001:db8:1:3::/64"},
		{"IPv6 loopback", &net.TCPAddr{IP: net.IPv6loopback, Port: 1}, "::/64"},
		{"a zone is dropped", &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, "fe80::/64"},
		{"another kind of address, spelt HOST:PORT", addrString("203.0.113.5:80"), "203.0.113.5/32"},
		{"a Unix socket", &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, ""},
		{"no address", nil, ""},
		{"an empty TCP address", &net.TCPAddr{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := connlimit.Source(tt.addr)
			if tt.want == "" {
				if got.IsValid() {
					t.Fatalf("Source(%v) = %v, want none", tt.addr, got)
				}
				return
			}
			if got != netip.MustParsePrefix(tt.want) {
				t.Fatalf("Source(%v) = %v, want %s", tt.addr, got, tt.want)
			}
		})
	}
}

// addrString is a net.Addr known only by its string.
type addrString string

func (a addrString) Network() string { return "test" }
func (a addrString) String() string  { return string(a) }

func TestSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		want, def  int
		limit      uint64
		size       int
		errContain string
	}{
		{"the default under a large limit", 0, 1024, 20000, 1024, ""},
		{"the default lowered to fit", 0, 1024, 1280, 512, ""},
		{"asked for and fits", 5000, 1024, 20000, 5000, ""},
		{"asked for, exactly the budget", 9872, 1024, 20000, 9872, ""},
		{"asked for and too many", 9873, 1024, 20000, 0, "a cap of 9873 test connections does not fit the open-file limit (ulimit -n) of 20000: at most 9872 leave"},
		{"no cap asked for", -1, 1024, 300, 0, ""},
		{"no limit known", 50000, 1024, 0, 50000, ""},
		{"the default with no limit known", 0, 1024, 0, 1024, ""},
		{"a limit that leaves nothing", 0, 1024, 256, 0, "the open-file limit (ulimit -n) is 256, too low to leave room for any test connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := connlimit.Size("test connections", tt.want, tt.def, tt.limit)
			if tt.errContain != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContain) {
					t.Fatalf("Size = %d, %v; want an error with %q", got, err, tt.errContain)
				}
				return
			}
			if err != nil || got != tt.size {
				t.Fatalf("Size = %d, %v; want %d", got, err, tt.size)
			}
		})
	}
}

func TestFileLimit(t *testing.T) {
	t.Parallel()
	n := connlimit.FileLimit()
	switch runtime.GOOS {
	case "linux", "darwin":
		// The runtime raised the soft limit to (about) the hard one.
		if n < 64 {
			t.Fatalf("FileLimit() = %d", n)
		}
	default:
		if n != 0 {
			t.Fatalf("FileLimit() = %d where there is no limit to read", n)
		}
	}
}

// FuzzSource: any address string gives a valid source (an IPv4 /32 or an
// IPv6 /64 whose host bits are clear) or none, and never panics.
func FuzzSource(f *testing.F) {
	for _, s := range []string{"127.0.0.2:4000", "[2001:db8::1]:443", "[fe80::1%eth0]:1", "[::ffff:192.0.2.9]:1", "", "x:y", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := connlimit.Source(addrString(s))
		if !p.IsValid() {
			return
		}
		if (p.Addr().Is4() && p.Bits() != 32) || (p.Addr().Is6() && p.Bits() != 64) || p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			t.Fatalf("Source(%q) = %v", s, p)
		}
	})
}
