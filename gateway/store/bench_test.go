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

// BenchmarkBeginAttempt compares an attempt on an open code with one on a
// selector with none (a decoy's): the gateway's answer must not tell them
// apart by time, so their costs should match; compare the two ns/op.
func BenchmarkBeginAttempt(b *testing.B) {
	ctx := context.Background()
	for _, kind := range []string{"open", "decoy"} {
		b.Run(kind, func(b *testing.B) {
			s, _ := openTest(b)
			var c Code
			n := 0
			for b.Loop() {
				if kind == "open" && n%MaxFailedAttempts == 0 {
					b.StopTimer()
					c = mustCreateCode(b, s, testCode(false))
					b.StartTimer()
				}
				n++
				sel := c.Selector
				if kind == "decoy" {
					sel = "none"
				}
				if _, err := s.BeginAttempt(ctx, sel, t0); (err != nil) != (kind == "decoy") {
					b.Fatal(err)
				}
			}
		})
	}
}
