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
