package store

import (
	"context"
	"fmt"
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

// BenchmarkListNodes lists 10,000 nodes, as an admin's `palyra nodes
// list` does with a big gateway (and `palyra bench` every 100 ms through a
// storm).
func BenchmarkListNodes(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	s, _ := openTest(b)
	registerNodes(b, s, n)
	for b.Loop() {
		nodes, err := s.ListNodes(ctx)
		if err != nil || len(nodes) != n {
			b.Fatalf("ListNodes: %d nodes, %v; want %d", len(nodes), err, n)
		}
	}
}

// BenchmarkUpsertNodes records the registrations of 100 paired devices in
// one transaction, as the gateway's registration writer does in a storm.
func BenchmarkUpsertNodes(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	nodes := registerNodes(b, s, 100)
	for b.Loop() {
		outcomes, err := s.UpsertNodes(ctx, nodes)
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range outcomes {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPendingInvocations looks for a node's pending invocations, as
// the dispatcher does at each registration; the node has none, as most
// have in a storm.
func BenchmarkPendingInvocations(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	id := registerNodes(b, s, 1)[0].DeviceID
	for b.Loop() {
		pending, err := s.PendingInvocations(ctx, id, t0)
		if err != nil || len(pending) != 0 {
			b.Fatalf("PendingInvocations = %v, %v; want none", pending, err)
		}
	}
}

// registerNodes writes n devices and their nodes directly, in one
// transaction, and returns the nodes.
func registerNodes(b *testing.B, s *Store, n int) []Node {
	ctx := context.Background()
	nodes := make([]Node, n)
	err := s.update(ctx, func(tx *txn) error {
		for i := range n {
			id, pub := newDevice(b)
			name := fmt.Sprintf("laptop-%d", i)
			if _, err := tx.ExecContext(ctx, `INSERT INTO devices (id, public_key, name, platform, paired_at) VALUES (?, ?, ?, ?, ?)`,
				dbDeviceID(id), []byte(pub), name, "linux/amd64", dbTime(t0)); err != nil {
				return err
			}
			nodes[i] = Node{DeviceID: id, Name: name, Platform: "linux/amd64", Version: "1.0.0", LastSeen: t0}
			if err := upsertNodeTx(ctx, tx, nodes[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return nodes
}
