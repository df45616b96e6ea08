package store

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The sweeps of two gateways on one database, at once and then again,
// change each row once: every code, request and invocation that is due
// is expired and audited once, the old audit rows are deleted once, with
// one audit.pruned row, and the second round finds nothing to do. (One
// gateway sweeps at a time, but a sweeper whose lock connection died may
// still be in a sweep when the next one begins.)
func TestSweepsOfTwoGatewaysAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, url := postgresBackend.openTest(t)
	b := postgresBackend.openAt(t, url)
	defer b.Close()

	const n = 5
	for range n {
		mustCreateCode(t, a, testCode(false))
		pair(t, a, false, testRequest(t))
		d, _ := pairedDevice(t, a)
		mustQueue(t, a, testInvocation(t, d.ID, t0))
	}
	// Audit rows from before the retention: the pairings' own, at t0.
	before, err := a.ListAudit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(48 * time.Hour)

	type result struct{ codes, requests, pruned int }
	sweep := func(s *Store) (r result) {
		var err error
		if r.codes, r.requests, err = s.Sweep(ctx, later); err != nil {
			t.Errorf("Sweep: %v", err)
		}
		if r.pruned, err = s.PruneAudit(ctx, t0.Add(time.Hour), later); err != nil {
			t.Errorf("PruneAudit: %v", err)
		}
		return r
	}
	var total result
	for range 2 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				r := sweep(s)
				mu.Lock()
				total.codes, total.requests, total.pruned = total.codes+r.codes, total.requests+r.requests, total.pruned+r.pruned
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	// Open were the n codes minted alone (the pairings used theirs), and
	// pending the n requests not approved.
	if total.codes != n || total.requests != n || total.pruned != len(before) {
		t.Fatalf("two rounds of two sweepers expired %d codes and %d requests and pruned %d audit rows; want %d, %d and %d",
			total.codes, total.requests, total.pruned, n, n, len(before))
	}
	events, err := a.ListAudit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range events {
		kinds[e.Kind]++
	}
	if kinds[AuditCodeExpired] != n || kinds[AuditRequestExpired] != n || kinds[AuditInvocationExpired] != n || kinds[AuditPruned] != 1 {
		t.Fatalf("audit rows after the sweeps: %v; want %d code.expired, %d request.expired, %d invocation.expired, 1 audit.pruned",
			kinds, n, n, n)
	}
	for _, s := range []*Store{a, b} {
		invs, err := s.ListInvocations(ctx, InvocationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range invs {
			if inv.State != InvocationExpired {
				t.Fatalf("invocation %s is %s after the sweeps", inv.RequestID, inv.State)
			}
		}
	}
}
