package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// raceRounds is how many times each race below is run: each round is a
// fresh row that two stores change at once.
const raceRounds = 8

// race runs a and b at once (released together) and returns their errors.
func race(a, b func() error) (errA, errB error) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() { <-start; errA = a() })
	wg.Go(func() { <-start; errB = b() })
	close(start)
	wg.Wait()
	return errA, errB
}

// oneWins checks that exactly one of two racing calls succeeded and the
// other was refused with want, and says which won.
func oneWins(t *testing.T, what string, errA, errB, want error) (aWon bool) {
	t.Helper()
	switch {
	case errA == nil && errors.Is(errB, want):
		return true
	case errB == nil && errors.Is(errA, want):
		return false
	}
	t.Fatalf("%s: errors %v and %v; want one success and one %v", what, errA, errB, want)
	return false
}

// Two stores on one database stand in for two gateways: every state
// transition they race for is made once, by one of them, and the other is
// refused as if it had come second; nothing is lost or done twice.
func TestTwoStoresRaceTransitions(t *testing.T) { bothBackends(t, testTwoStoresRaceTransitions) }

func testTwoStoresRaceTransitions(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	a, where := be.openTest(t)
	b := be.openAt(t, where)
	defer b.Close()
	dev, _ := pairedDevice(t, a)

	t.Run("approve twice", func(t *testing.T) {
		for range raceRounds {
			r := requestIn(t, a, RequestPending)
			errA, errB := race(
				func() error { _, err := a.ApproveRequest(ctx, r.ID, t0); return err },
				func() error { _, err := b.ApproveRequest(ctx, r.ID, t0); return err })
			oneWins(t, "two approvals", errA, errB, ErrIllegalTransition)
		}
	})
	t.Run("approve and reject", func(t *testing.T) {
		for range raceRounds {
			r := requestIn(t, a, RequestPending)
			errA, errB := race(
				func() error { _, err := a.ApproveRequest(ctx, r.ID, t0); return err },
				func() error { _, err := b.RejectRequest(ctx, r.ID, t0); return err })
			want := RequestRejected
			if oneWins(t, "approval and rejection", errA, errB, ErrIllegalTransition) {
				want = RequestApproved
			}
			if got, err := b.GetRequest(ctx, r.ID); err != nil || got.State != want {
				t.Fatalf("request after the race: %s, %v; want %s", got.State, err, want)
			}
		}
	})
	t.Run("issue twice", func(t *testing.T) {
		for i := range raceRounds {
			r := requestIn(t, a, RequestApproved)
			errA, errB := race(
				func() error {
					_, err := a.IssueCertificate(ctx, r.ID, testCert(r.DeviceID, fmt.Sprintf("a-%d-%s", i, r.ID), t0.Add(time.Hour)), t0)
					return err
				},
				func() error {
					_, err := b.IssueCertificate(ctx, r.ID, testCert(r.DeviceID, fmt.Sprintf("b-%d-%s", i, r.ID), t0.Add(time.Hour)), t0)
					return err
				})
			oneWins(t, "two issues", errA, errB, ErrIllegalTransition)
			var certs int
			if err := a.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates WHERE device_id = ?`,
				dbDeviceID(r.DeviceID)).Scan(&certs); err != nil || certs != 1 {
				t.Fatalf("%d certificates for the request's device (%v), want 1", certs, err)
			}
		}
	})
	t.Run("complete pairing twice", func(t *testing.T) {
		for range raceRounds {
			c := mustCreateCode(t, a, testCode(false))
			if _, err := a.BeginAttempt(ctx, c.Selector, t0); err != nil {
				t.Fatal(err)
			}
			errA, errB := race(
				func() error { _, err := a.CompletePairing(ctx, c.ID, testRequest(t), t0); return err },
				func() error { _, err := b.CompletePairing(ctx, c.ID, testRequest(t), t0); return err })
			oneWins(t, "two pairings with one code", errA, errB, ErrCodeNotOpen)
			var reqs int
			if err := a.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pairing_requests WHERE code_id = ?`, c.ID).Scan(&reqs); err != nil || reqs != 1 {
				t.Fatalf("%d requests from one code (%v), want 1", reqs, err)
			}
		}
	})
	t.Run("create code with one selector", func(t *testing.T) {
		for range raceRounds {
			c := testCode(false)
			errA, errB := race(
				func() error { _, err := a.CreateCode(ctx, c); return err },
				func() error { _, err := b.CreateCode(ctx, c); return err })
			oneWins(t, "two codes with one selector", errA, errB, ErrSelectorInUse)
			if _, _, err := a.Sweep(ctx, c.ExpiresAt); err != nil { // frees the selector for later rounds
				t.Fatal(err)
			}
		}
	})
	t.Run("queue one request ID twice", func(t *testing.T) {
		for range raceRounds {
			inv := testInvocation(t, dev.ID, t0)
			errA, errB := race(
				func() error { return a.QueueInvocation(ctx, inv) },
				func() error { return b.QueueInvocation(ctx, inv) })
			oneWins(t, "two queueings of one request ID", errA, errB, ErrDuplicate)
		}
	})
	t.Run("finish and cancel", func(t *testing.T) {
		for range raceRounds {
			inv := invocationIn(t, a, dev.ID, InvocationDelivered)
			errA, errB := race(
				func() error { return a.FinishInvocation(ctx, inv.RequestID, []byte("r"), true, t0) },
				func() error { _, _, err := b.CancelInvocation(ctx, inv.RequestID, []byte("c"), t0); return err })
			want := InvocationCancelled
			if oneWins(t, "a result and a cancellation", errA, errB, ErrIllegalTransition) {
				want = InvocationDone
			}
			if got := mustGetInvocation(t, b, inv.RequestID); got.State != want {
				t.Fatalf("invocation after the race: %s, want %s", got.State, want)
			}
		}
	})
	// Delivering again is allowed, so both win; neither count is lost.
	t.Run("deliver twice", func(t *testing.T) {
		for range raceRounds {
			inv := invocationIn(t, a, dev.ID, InvocationQueued)
			errA, errB := race(
				func() error { _, err := a.MarkDelivered(ctx, inv.RequestID, t0); return err },
				func() error { _, err := b.MarkDelivered(ctx, inv.RequestID, t0); return err })
			if errA != nil || errB != nil {
				t.Fatalf("two deliveries: %v, %v", errA, errB)
			}
			if got := mustGetInvocation(t, b, inv.RequestID); got.State != InvocationDelivered || got.Attempts != 2 {
				t.Fatalf("after two deliveries: %s with %d attempts, want delivered with 2", got.State, got.Attempts)
			}
		}
	})
	t.Logf("%s: %d and %d transactions run again after a conflict", be.name, a.retries.Load(), b.retries.Load())
}
