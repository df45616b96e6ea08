package limit_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
)

var (
	t0    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	alice = netip.MustParseAddr("192.0.2.1")
	bob   = netip.MustParseAddr("192.0.2.2")
)

// refusal returns the refusal err is, or fails.
func refusal(t *testing.T, err error) *limit.Refusal {
	t.Helper()
	var r *limit.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got %v, want a refusal", err)
	}
	return r
}

// admitN admits n attempts from addr at now and keeps their tickets open.
func admitN(t *testing.T, l *limit.Limiter, addr netip.Addr, now time.Time, n int) []*limit.Ticket {
	t.Helper()
	var out []*limit.Ticket
	for i := range n {
		tk, err := l.Admit(addr, now)
		if err != nil {
			t.Fatalf("attempt %d from %s: %v", i+1, addr, err)
		}
		out = append(out, tk)
	}
	return out
}

func done(tickets []*limit.Ticket) {
	for _, tk := range tickets {
		tk.Done()
	}
}

func TestBurstThenOneEveryInterval(t *testing.T) {
	t.Parallel()
	l := limit.New(limit.Config{Burst: 5, Interval: 10 * time.Second})
	done(admitN(t, l, alice, t0, 5))

	_, err := l.Admit(alice, t0)
	r := refusal(t, err)
	if r.Reason != limit.ReasonAddress || r.RetryAfter != 10*time.Second || !r.First {
		t.Fatalf("sixth attempt: %+v, want address_rate, retry in 10 s, first", r)
	}
	if got, want := r.Error(), "too many pairing attempts from this address; try again in 10 s"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	// Further refusals are not the first; the wait shrinks with time and
	// is told in whole seconds, rounded up.
	_, err = l.Admit(alice, t0.Add(2500*time.Millisecond))
	if r := refusal(t, err); r.First || r.RetryAfter != 8*time.Second {
		t.Fatalf("refusal 2.5 s later: %+v, want not first, retry in 8 s", r)
	}
	// Another address is not affected.
	done(admitN(t, l, bob, t0, 5))

	// One interval later: exactly one more.
	done(admitN(t, l, alice, t0.Add(10*time.Second), 1))
	if _, err := l.Admit(alice, t0.Add(10*time.Second)); refusal(t, err).First != true {
		t.Fatal("the first refusal after an admitted attempt should say so")
	}
	// A long pause refills to the burst, no more.
	done(admitN(t, l, alice, t0.Add(time.Hour), 5))
	if _, err := l.Admit(alice, t0.Add(time.Hour)); err == nil {
		t.Fatal("a pause refilled past the burst")
	}
}

func TestClockGoingBackEarnsNothing(t *testing.T) {
	t.Parallel()
	l := limit.New(limit.Config{Burst: 1, Interval: time.Minute})
	done(admitN(t, l, alice, t0, 1))
	if _, err := l.Admit(alice, t0.Add(-time.Hour)); err == nil {
		t.Fatal("a clock set back refilled the bucket")
	}
	if _, err := l.Admit(alice, t0.Add(59*time.Second)); err == nil {
		t.Fatal("refilled before the interval")
	}
	done(admitN(t, l, alice, t0.Add(time.Minute), 1))
}

func TestConfirmedGivesTheTokenBack(t *testing.T) {
	t.Parallel()
	l := limit.New(limit.Config{Burst: 2, Interval: time.Minute})
	// Devices that pair (they knew the code) do not use up the address's
	// attempts: ten in a row from one address, as from an office's NAT.
	for range 10 {
		tk := admitN(t, l, alice, t0, 1)[0]
		tk.Confirmed(t0)
		tk.Done()
	}
	// A refund happens once per ticket.
	both := admitN(t, l, alice, t0, 2)
	both[0].Confirmed(t0)
	both[0].Confirmed(t0)
	done(both)
	done(admitN(t, l, alice, t0, 1))
	if _, err := l.Admit(alice, t0); err == nil {
		t.Fatal("confirming one ticket twice gave two tokens back")
	}
	// The refund never lifts the bucket above its burst.
	l = limit.New(limit.Config{Burst: 2, Interval: time.Minute})
	tk := admitN(t, l, alice, t0, 1)[0]
	tk.Confirmed(t0.Add(time.Hour))
	done(admitN(t, l, alice, t0.Add(time.Hour), 2))
	if _, err := l.Admit(alice, t0.Add(time.Hour)); err == nil {
		t.Fatal("a refund on a full bucket raised it past the burst")
	}
}

func TestConcurrencyCap(t *testing.T) {
	t.Parallel()
	l := limit.New(limit.Config{Burst: 3, Interval: time.Minute, Concurrency: 2})
	running := admitN(t, l, alice, t0, 2)
	if l.Running() != 2 {
		t.Fatalf("running %d, want 2", l.Running())
	}
	_, err := l.Admit(bob, t0)
	r := refusal(t, err)
	if r.Reason != limit.ReasonBusy || r.RetryAfter != limit.BusyRetry || !r.First {
		t.Fatalf("third run at once: %+v", r)
	}
	if got, want := r.Error(), "the gateway is busy with other pairing attempts; try again in 2 s"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	if _, err := l.Admit(bob, t0); refusal(t, err).First {
		t.Fatal("second busy refusal marked first")
	}
	// Done frees the slot, once; the busy refusals cost bob no tokens.
	running[0].Done()
	running[0].Done()
	if l.Running() != 1 {
		t.Fatalf("running %d after one Done (twice), want 1", l.Running())
	}
	done(admitN(t, l, bob, t0, 1))
	running[1].Done()
	done(admitN(t, l, bob, t0, 2))
	if _, err := l.Admit(bob, t0); refusal(t, err).Reason != limit.ReasonAddress {
		t.Fatal("bob's fourth attempt should meet his own limit")
	}
	if l.Running() != 0 {
		t.Fatalf("running %d at the end, want 0", l.Running())
	}
}

func TestLimitsOff(t *testing.T) {
	t.Parallel()
	l := limit.New(limit.Config{Burst: -1, Concurrency: -1})
	tickets := admitN(t, l, alice, t0, 1000)
	if l.Running() != 1000 || l.Addresses() != 0 {
		t.Fatalf("running %d, addresses %d; want 1000, 0", l.Running(), l.Addresses())
	}
	tickets[0].Confirmed(t0)
	done(tickets)
	if l.Running() != 0 {
		t.Fatalf("running %d, want 0", l.Running())
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	got := limit.New(limit.Config{}).Config()
	want := limit.Config{Burst: limit.DefaultBurst, Interval: limit.DefaultInterval,
		Concurrency: limit.DefaultConcurrency, MaxAddresses: limit.DefaultMaxAddresses}
	if got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
}

func TestSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"127.0.0.2", "127.0.0.2"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
		{"::1", "::"},
	} {
		if got := limit.Source(netip.MustParseAddr(tc.in)); got != netip.MustParseAddr(tc.want) {
			t.Errorf("Source(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// One host's /64 shares one bucket.
	l := limit.New(limit.Config{Burst: 1, Interval: time.Minute})
	done(admitN(t, l, netip.MustParseAddr("2001:db8::1"), t0, 1))
	if _, err := l.Admit(netip.MustParseAddr("2001:db8::ffff:2"), t0); err == nil {
		t.Fatal("another address in the same /64 got its own bucket")
	}
	done(admitN(t, l, netip.MustParseAddr("2001:db8:0:1::1"), t0, 1))
}

// A flood from many addresses keeps the table at its bound, forgetting the
// least recently seen; a throttled address that keeps trying stays
// throttled.
func TestTableIsBounded(t *testing.T) {
	t.Parallel()
	const max = 100
	l := limit.New(limit.Config{Burst: 1, Interval: time.Minute, MaxAddresses: max})
	done(admitN(t, l, alice, t0, 1))
	for i := range 10 * max {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		done(admitN(t, l, addr, t0, 1))
		if i%10 == 0 {
			// alice keeps trying, so she is never the least recently seen.
			if _, err := l.Admit(alice, t0); err == nil {
				t.Fatalf("alice admitted again during the flood (after %d addresses)", i)
			}
		}
		if n := l.Addresses(); n > max {
			t.Fatalf("%d addresses tracked, bound %d", n, max)
		}
	}
	if n := l.Addresses(); n != max {
		t.Fatalf("%d addresses tracked after the flood, want %d", n, max)
	}
	// Once every bucket has filled up again, they are dropped as the
	// next attempts come.
	done(admitN(t, l, bob, t0.Add(time.Hour), 1))
	if n := l.Addresses(); n != 1 {
		t.Fatalf("%d addresses tracked an hour later, want only bob's", n)
	}
}

func BenchmarkAdmitRefused(b *testing.B) {
	l := limit.New(limit.Config{Burst: 1, Interval: time.Hour})
	tk, err := l.Admit(alice, t0)
	if err != nil {
		b.Fatal(err)
	}
	tk.Done()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Admit(alice, t0); err == nil {
			b.Fatal("admitted")
		}
	}
}

func BenchmarkAdmitManyAddresses(b *testing.B) {
	l := limit.New(limit.Config{})
	addrs := make([]netip.Addr, 4*limit.DefaultMaxAddresses)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if tk, err := l.Admit(addrs[i%len(addrs)], t0); err == nil {
			tk.Done()
		}
		i++
	}
}
