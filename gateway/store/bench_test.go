package store

import (
	"context"
	"testing"
)

func BenchmarkBeginAndCompletePairing(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	for b.Loop() {
		b.StopTimer()
		c := mustCreateCode(b, s, testCode(false))
		r := testRequest(b)
		b.StartTimer()
		if _, err := s.BeginAttempt(ctx, c.Selector, t0); err != nil {
			b.Fatal(err)
		}
		if _, err := s.CompletePairing(ctx, c.ID, r, t0); err != nil {
			b.Fatal(err)
		}
	}
}
