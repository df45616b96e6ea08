package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/app/localgw"
	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/node"
)

// TestDesktopRestartDuringApprovalUnderXvfb: the real app (keychain, X
// server, no tray) pairs from its wizard with a PIN typed on the keyboard,
// is quit while the gateway's admin has not answered, and started again:
// it opens the wizard on the request, still waiting, with its verification
// code; the admin's approval moves the page on and the app connects. The
// gateway is a local gateway run by the test, so the test is its admin.
// Screenshots: pairing-waiting (after the restart) and
// pairing-waiting-approved.
func TestDesktopRestartDuringApprovalUnderXvfb(t *testing.T) {
	d := newDesktop(t)
	g, err := localgw.Start(context.Background(), localgw.Options{
		DataDir: filepath.Join(d.dir, "gw"), Name: "Office gateway", Logger: testlog.New(t, "who", "gateway"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Stop(); err != nil {
			t.Errorf("stopping the gateway: %v", err)
		}
	})
	cfgDir := filepath.Join(d.dir, "home", "config", "palyra", "node")
	args := []string{"--config-dir", cfgDir}
	socket := filepath.Join(cfgDir, "node.sock")

	app := d.start("first", args...)
	waitState(t, socket, node.StateUnpaired, startDeadline, app)
	// "Pair with gateway…" is the window's first control.
	d.press(d.window("Palyra"), "Tab", "space")
	wiz := d.window("Pair with a gateway")
	d.xdotool("windowmove", "--sync", wiz, "620", "0")
	code, err := g.MintCode(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// The cursor is in the address; then the PIN, then Pair.
	d.typeText(wiz, code.Address)
	d.press(wiz, "Tab")
	d.typeText(wiz, code.PIN)
	d.press(wiz, "Tab", "space")
	first := waitState(t, socket, node.StatePending, stepDeadline, app)
	if first.VerificationCode == "" || first.PairingRequestID == "" {
		t.Fatalf("waiting for approval: %+v", first)
	}
	app.stop()
	if p, err := node.ReadPending(cfgDir); err != nil || p.RequestID != first.PairingRequestID {
		t.Fatalf("after quitting: pending request %+v, %v; want %s", p, err, first.PairingRequestID)
	}

	app2 := d.start("second", args...)
	st := waitState(t, socket, node.StatePending, startDeadline, app2)
	if st.VerificationCode != first.VerificationCode || st.PairingRequestID != first.PairingRequestID {
		t.Fatalf("after the restart: %+v, want request %s with code %s", st, first.PairingRequestID, first.VerificationCode)
	}
	wiz = d.window("Pair with a gateway")
	d.xdotool("windowmove", "--sync", wiz, "620", "0")
	waitFor(t, stepDeadline, "the log to say the wizard shows the waiting request", func() bool {
		return strings.Contains(app2.log(), "pairing request still waiting for approval")
	})
	d.screenshot("pairing-waiting")

	if err := g.Approve(t.Context(), st.PairingRequestID); err != nil {
		t.Fatal(err)
	}
	paired := waitState(t, socket, node.StateConnected, stepDeadline, app2)
	if paired.GatewayName != "Office gateway" || paired.DeviceID != first.DeviceID {
		t.Fatalf("after approval: %+v (device before %s)", paired, first.DeviceID)
	}
	waitFor(t, stepDeadline, "the log to say the request was answered", func() bool {
		return strings.Contains(app2.log(), `msg="pending pairing request answered" component=ui outcome=Paired`)
	})
	d.screenshot("pairing-waiting-approved")
	app2.stop()
}

// typeText types text into window win, which gets the focus first (see
// press). xdotool reads it from its standard input, so that a PIN stays
// out of the process list.
func (d *desktopEnv) typeText(win, text string) {
	d.t.Helper()
	d.xdotool("windowfocus", "--sync", win)
	cmd := exec.Command("xdotool", "type", "--delay", "20", "--file", "-")
	cmd.Env = d.env
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("xdotool type: %v\n%s", err, out)
	}
}
