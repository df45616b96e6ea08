package carrier_test

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/gateway/carrier"
	"github.com/palyra/palyra-go/internal/testwait"
)

// A lease that is not renewed expires (once) a TTL or a little more after
// it was last heard; one renewed meanwhile does not; released ones never
// do; a paused one does not until it is resumed, and then a TTL later;
// and the checking goroutine runs only while a lease is held.
func TestLeasesExpireOnlyTheSilent(t *testing.T) {
	const ttl = 200 * time.Millisecond
	l := carrier.NewLeases(ttl)
	if l.Checking() {
		t.Fatal("checking with no lease held")
	}
	expired := make(chan string, 3)
	silent := l.Hold(func() { expired <- "silent" })
	heardAt := time.Now()
	renewed := l.Hold(func() { expired <- "renewed" })
	released := l.Hold(func() { expired <- "released" })
	released.Release()
	if !l.Checking() {
		t.Fatal("not checking with leases held")
	}

	// Renew one lease, every tenth of a TTL, until the silent one lapses.
	tick := time.NewTicker(ttl / 10)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	var who string
	for who == "" {
		renewed.Heard()
		select {
		case who = <-expired:
		case <-tick.C:
		case <-deadline:
			t.Fatal("the silent lease did not expire within 5 s")
		}
	}
	if who != "silent" {
		t.Fatalf("%s lease expired", who)
	}
	if !silent.Lapsed() || renewed.Lapsed() || released.Lapsed() {
		t.Fatalf("lapsed: silent %v, renewed %v, released %v", silent.Lapsed(), renewed.Lapsed(), released.Lapsed())
	}
	if d := time.Since(heardAt); d < ttl {
		t.Fatalf("the silent lease expired %v after it was heard, before its TTL", d)
	}

	// Unrenewed now, the other lapses too; then none is held.
	if who := testwait.Recv(t, expired, 5*time.Second, "the renewed lease to lapse once silent"); who != "renewed" {
		t.Fatalf("%s lease expired", who)
	}
	testwait.None(t, expired, "second expiry")
	if l.Checking() {
		t.Fatal("still checking with every lease gone")
	}
	renewed.Release() // after expiry: a no-op

	// A paused lease does not lapse; resumed, it lapses a TTL later.
	paused := l.Hold(func() { expired <- "paused" })
	paused.Pause()
	pausedAt := time.Now()
	l.Hold(func() { expired <- "other" })
	if who := testwait.Recv(t, expired, 5*time.Second, "the unpaused lease to lapse"); who != "other" {
		t.Fatalf("%s lease expired", who)
	}
	if paused.Lapsed() {
		t.Fatalf("the paused lease lapsed, %v after it was paused", time.Since(pausedAt))
	}
	paused.Resume()
	resumedAt := time.Now()
	if who := testwait.Recv(t, expired, 5*time.Second, "the resumed lease to lapse"); who != "paused" {
		t.Fatalf("%s lease expired", who)
	}
	if d := time.Since(resumedAt); d < ttl {
		t.Fatalf("the resumed lease lapsed %v after its resumption, before its TTL", d)
	}

	// A released lease stops the checking too.
	again := l.Hold(func() { expired <- "again" })
	again.Release()
	if l.Checking() {
		t.Fatal("still checking after the last lease was released")
	}
}
