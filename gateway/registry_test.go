package gateway

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

func TestEventBudget(t *testing.T) {
	var b eventBudgets
	var flooder, other identity.DeviceID
	flooder[0], other[0] = 1, 2
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	allowed := 0
	for range 1000 {
		if b.allow(flooder, now) {
			allowed++
		}
	}
	if allowed != int(eventBurst) {
		t.Fatalf("a burst of 1000 let %d through, want %v", allowed, eventBurst)
	}
	if !b.allow(other, now) {
		t.Fatal("one node's flood used up another's budget")
	}
	if b.allow(flooder, now.Add(100*time.Millisecond)) {
		t.Fatal("a token came back too soon")
	}
	if !b.allow(flooder, now.Add(time.Second)) {
		t.Fatal("the budget never refills")
	}
}

func TestPresenceWritesAtMostEveryInterval(t *testing.T) {
	var p presenceWrites
	var node, other identity.DeviceID
	node[0], other[0] = 1, 2
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p.registered(node, t0)
	for i, step := range []struct {
		at   time.Duration
		want bool
	}{
		{time.Millisecond, false}, // a node renewing in a loop
		{presenceInterval - time.Millisecond, false},
		{presenceInterval, true},
		{presenceInterval + time.Second, false},
		{2*presenceInterval + time.Second, true}, // a well-behaved node's pace, and more
	} {
		if got := p.due(node, t0.Add(step.at)); got != step.want {
			t.Errorf("renewal %d at +%v: due=%v, want %v", i, step.at, got, step.want)
		}
	}
	if !p.due(other, t0) {
		t.Error("another node's first renewal was held back by this one's")
	}
	// After the node is gone, its next session's first renewal is written.
	p.forget(node)
	if !p.due(node, t0.Add(2*presenceInterval+2*time.Second)) {
		t.Error("a renewal after the node reconnected was held back")
	}
}
