package app

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/palyra/palyra-go/app/localgw"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/pairclient"
)

func TestStillWaitingText(t *testing.T) {
	expires := time.Date(2026, 5, 1, 12, 10, 0, 0, time.UTC)
	retry := time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		st        node.Status
		want, not []string
	}{
		{"no address", node.Status{State: node.StatePending}, []string{"asked the gateway to pair", "moves on by itself"}, []string{"expires", "cannot be reached"}},
		{"address and expiry", node.Status{State: node.StatePending, Gateways: []string{"127.0.0.1:7443"}, PairingExpiresAt: expires},
			[]string{"the gateway at 127.0.0.1:7443", "expires at " + expires.Local().Format("15:04")}, []string{"cannot be reached"}},
		// The agent's own note while it waits is not an error to show.
		{"waiting", node.Status{State: node.StatePending, LastError: "still waiting for approval"}, nil, []string{"cannot be reached"}},
		{"retrying", node.Status{State: node.StatePending, LastError: "dialing 127.0.0.1:7443: connection refused\nmore", RetryAt: retry},
			[]string{"cannot be reached (dialing 127.0.0.1:7443: connection refused); trying again at " + retry.Local().Format("15:04:05")}, []string{"more"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := StillWaitingText(tc.st)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%q has %q", got, n)
				}
			}
		})
	}
}

// noteApp records the notifications the UI sends.
type noteApp struct {
	fyne.App
	notes chan *fyne.Notification
}

func (a *noteApp) SendNotification(n *fyne.Notification) { a.notes <- n }

// wantNote waits for a notification with the title, skipping others.
func (a *noteApp) wantNote(t *testing.T, title string) *fyne.Notification {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case n := <-a.notes:
			if n.Title == title {
				return n
			}
		case <-deadline.C:
			t.Fatalf("no notification %q within 20 s", title)
		}
	}
}

// startLocalGateway is the app's local gateway in a temporary directory,
// stopped when the test ends.
func startLocalGateway(t *testing.T) *localgw.Gateway {
	t.Helper()
	g, err := localgw.Start(context.Background(), localgw.Options{DataDir: t.TempDir(), Name: "Test gateway", Logger: testlog.New(t, "who", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Stop(); err != nil {
			t.Errorf("stopping the gateway: %v", err)
		}
	})
	return g
}

// uiMu stands in for the Fyne goroutine of the UIs startTestUI makes: one
// for all of them, since a UI's goroutines may still be applying a last
// status as the next test starts, and Fyne's caches are global.
var uiMu sync.Mutex

// startTestUI starts the UI over a, with the main window (no tray) and its
// notifications recorded; do serialises with the UI's goroutines. When
// the test ends the UI stops, and the agent's run with it.
func startTestUI(t *testing.T, a *node.Agent) (*UI, *noteApp, func(func())) {
	t.Helper()
	fa := &noteApp{App: test.NewTempApp(t), notes: make(chan *fyne.Notification, 16)}
	do := func(f func()) { uiMu.Lock(); defer uiMu.Unlock(); f() }
	u := New(fa, Options{Agent: a, Do: do, Logger: testlog.New(t, "who", "ui")})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		var r *runState
		do(func() { r = u.run })
		cancel()
		if r != nil {
			select {
			case <-r.done:
			case <-time.After(20 * time.Second):
				t.Error("the agent did not stop within 20 s")
			}
		}
	})
	do(func() { u.Start(ctx) })
	return u, fa, do
}

// interruptedRequest makes a pairing request to g from an agent in a new
// directory and interrupts it once it waits for approval, as quitting the
// app would. It returns the request and a new agent on the same directory
// and secrets: the app's agent after a restart.
func interruptedRequest(t *testing.T, g *localgw.Gateway) (*node.Agent, pairclient.Pending) {
	t.Helper()
	dir := t.TempDir()
	open := func() *node.Agent {
		secrets, err := secretstore.NewFile(filepath.Join(dir, "secrets"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := node.New(node.Config{ConfigDir: dir, Secrets: secrets, Name: "test-laptop", Logger: testlog.New(t, "who", "node")})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	code, err := g.MintCode(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	pending := make(chan pairclient.Pending, 1)
	done := make(chan error, 1)
	go func() {
		_, err := open().Pair(ctx, node.PairOptions{Gateway: code.Address, PIN: code.PIN, OnPending: func(p pairclient.Pending) { pending <- p }})
		done <- err
	}()
	var p pairclient.Pending
	select {
	case p = <-pending:
	case err := <-done:
		t.Fatalf("pairing ended before it waited for approval: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no pending request within 20 s")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted pairing: %v, want context.Canceled", err)
	}
	a := open()
	if !a.HasPendingPairing() || a.Status().State != node.StatePending {
		t.Fatalf("restarted agent: pending %v, status %+v", a.HasPendingPairing(), a.Status())
	}
	return a, p
}

// TestWizardStillWaiting: the app restarted while its pairing request
// waited for approval (a real agent and a real local gateway, over
// loopback) opens the wizard on that request with its verification code.
// Approval moves the page on to "Paired" and the agent connects;
// rejection shows why; "Cancel request and pair again" forgets the request
// and asks for a code; "Keep waiting" closes the window and "Pair with
// gateway…" brings the page back.
func TestWizardStillWaiting(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	g := startLocalGateway(t)
	for _, tc := range []struct {
		name   string
		answer func(t *testing.T, u *UI, do func(func()), a *node.Agent, id string)
	}{
		{"approved after keep waiting", func(t *testing.T, u *UI, do func(func()), a *node.Agent, id string) {
			do(func() { test.Tap(u.Wizard().KeepWaiting) })
			do(func() {
				if u.Wizard() != nil || u.run == nil || !u.run.collecting {
					t.Fatalf("after Keep waiting: wizard %v, agent collecting %v", u.Wizard() != nil, u.run != nil && u.run.collecting)
				}
				if u.win.pair.Disabled() {
					t.Fatal("Pair with gateway… is disabled while the request waits")
				}
				test.Tap(u.win.pair)
				if z := u.Wizard(); z == nil || z.Step != StepStillWaiting {
					t.Fatalf("Pair with gateway… did not bring the waiting request back: %+v", z)
				}
			})
			if err := g.Approve(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			var z *Wizard
			do(func() { z = u.Wizard() })
			waitUntil(t, func() (ok bool) { do(func() { ok = z.Step == StepDone }); return ok })
			do(func() {
				if z.Title.Text != "Paired" || !strings.Contains(z.Message.Text, "paired with Test gateway as test-laptop") ||
					!z.Close.Visible() || z.Again.Visible() || z.CancelRequest.Visible() {
					t.Errorf("after approval: %q %q; close %v, again %v, cancel request %v",
						z.Title.Text, z.Message.Text, z.Close.Visible(), z.Again.Visible(), z.CancelRequest.Visible())
				}
			})
			u.fa.(*noteApp).wantNote(t, "Palyra: Paired")
			waitUntil(t, func() (ok bool) {
				do(func() { ok = strings.HasPrefix(u.Model().Status, "Connected to Test gateway as test-laptop") })
				return ok
			})
			if a.HasPendingPairing() {
				t.Error("the request is still pending after the agent collected it")
			}
		}},
		{"rejected", func(t *testing.T, u *UI, do func(func()), a *node.Agent, id string) {
			if err := g.Reject(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			var z *Wizard
			do(func() { z = u.Wizard() })
			waitUntil(t, func() (ok bool) { do(func() { ok = z.Step == StepDone }); return ok })
			_, want := Outcome(node.Status{}, pairing.ErrRejected)
			do(func() {
				if z.Title.Text != "Rejected" || z.Message.Text != want || !z.Again.Visible() || z.Window().Canvas().Focused() != z.Again {
					t.Errorf("after rejection: %q %q; Try again visible %v, focused %v", z.Title.Text, z.Message.Text, z.Again.Visible(), z.Window().Canvas().Focused())
				}
			})
			if n := u.fa.(*noteApp).wantNote(t, "Palyra: Rejected"); n.Content != want {
				t.Errorf("notification %q", n.Content)
			}
			if a.HasPendingPairing() || a.Status().State != node.StateUnpaired {
				t.Errorf("after rejection: pending %v, status %+v", a.HasPendingPairing(), a.Status())
			}
			do(func() {
				test.Tap(z.Again)
				if z.Step != StepInput || !z.input.Visible() {
					t.Errorf("Try again: step %v", z.Step)
				}
			})
		}},
		{"cancel request", func(t *testing.T, u *UI, do func(func()), a *node.Agent, id string) {
			var z *Wizard
			do(func() { z = u.Wizard(); test.Tap(z.CancelRequest) })
			waitUntil(t, func() (ok bool) { do(func() { ok = z.Step == StepInput }); return ok })
			do(func() {
				if !z.input.Visible() || z.progress.Visible() || u.run != nil {
					t.Errorf("after Cancel request: input %v, progress %v, agent running %v", z.input.Visible(), z.progress.Visible(), u.run != nil)
				}
			})
			if a.HasPendingPairing() || a.Status().State != node.StateUnpaired {
				t.Errorf("after Cancel request: pending %v, status %+v", a.HasPendingPairing(), a.Status())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, p := interruptedRequest(t, g)
			u, _, do := startTestUI(t, a)
			do(func() {
				z := u.Wizard()
				if z == nil {
					t.Fatal("no wizard at start while a request waits")
				}
				if z.Step != StepStillWaiting || z.Title.Text != "Still waiting for approval" || z.Code.Text != p.VerificationCode ||
					!strings.Contains(z.Message.Text, g.Address()) {
					t.Fatalf("wizard at start: step %v, %q, code %q (want %q), %q", z.Step, z.Title.Text, z.Code.Text, p.VerificationCode, z.Message.Text)
				}
				if !z.KeepWaiting.Visible() || !z.CancelRequest.Visible() || z.Cancel.Visible() || z.input.Visible() ||
					z.Window().Canvas().Focused() != z.KeepWaiting {
					t.Errorf("buttons: keep waiting %v, cancel request %v, cancel %v, input %v, focus %v",
						z.KeepWaiting.Visible(), z.CancelRequest.Visible(), z.Cancel.Visible(), z.input.Visible(), z.Window().Canvas().Focused())
				}
				if u.run == nil || !u.run.collecting {
					t.Error("the agent is not running to collect the answer")
				}
			})
			tc.answer(t, u, do, a, p.RequestID)
		})
	}
}

// TestWizardOwnRequest: while the wizard's own request waits for approval
// (a real agent and local gateway), Cancel withdraws it, so nothing waits to
// be collected after a restart; closing the window instead leaves it
// waiting, and the agent runs to collect it.
func TestWizardOwnRequest(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	g := startLocalGateway(t)
	for _, tc := range []struct {
		name string
		stop func(z *Wizard)
	}{
		{"cancel", func(z *Wizard) { test.Tap(z.Cancel) }},
		{"window closed", func(z *Wizard) { z.Window().Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAgent(t)
			u, fa, do := startTestUI(t, a)
			code, err := g.MintCode(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			var z *Wizard
			do(func() {
				u.ShowWizard()
				z = u.Wizard()
				if z.Step != StepInput {
					t.Fatalf("wizard of an unpaired device opens on %v", z.Step)
				}
				test.Type(z.Address, code.Address)
				test.Type(z.PIN, code.PIN)
				test.Tap(z.PairPIN)
			})
			waitUntil(t, func() (ok bool) { do(func() { ok = z.Step == StepWaiting }); return ok })
			do(func() { tc.stop(z) })
			if tc.name == "cancel" {
				waitUntil(t, func() (ok bool) { do(func() { ok = z.Step != StepWaiting }); return ok })
				do(func() {
					if z.Step != StepDone || z.Title.Text != "Cancelled" || u.run != nil {
						t.Errorf("after Cancel: step %v, %q, agent running %v", z.Step, z.Title.Text, u.run != nil)
					}
				})
				if a.HasPendingPairing() || a.Status().State != node.StateUnpaired {
					t.Errorf("after Cancel: pending %v, status %+v", a.HasPendingPairing(), a.Status())
				}
				return
			}
			fa.wantNote(t, "Palyra: Still waiting for approval")
			do(func() {
				if u.Wizard() != nil || u.run == nil || !u.run.collecting {
					t.Fatalf("after closing the window: wizard %v, agent collecting %v", u.Wizard() != nil, u.run != nil && u.run.collecting)
				}
			})
			if err := g.Approve(t.Context(), a.Status().PairingRequestID); err != nil {
				t.Fatal(err)
			}
			fa.wantNote(t, "Palyra: Paired")
			waitUntil(t, func() (ok bool) { do(func() { ok = u.status.State == node.StateConnected }); return ok })
		})
	}
}
