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

// BenchmarkAuditBatch writes batches of 256 call rows, as the audit
// log's writer does under many calls in flight; ns/row is one row's
// share.
func BenchmarkAuditBatch(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	batch := make([]AuditEvent, 256)
	for i := range batch {
		batch[i] = AuditEvent{At: t0, Kind: "invocation.completed", RequestID: "01M84DQ28HB4S9TYS0GNBPXZ0P", Detail: "bench.echo ok"}
	}
	for b.Loop() {
		if err := s.AuditBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/row")
}
