package app

import (
	"fmt"
	"math"
	"strings"
	"time"

	"fyne.io/fyne/v2"

	"github.com/palyra/palyra-go/assets"
	"github.com/palyra/palyra-go/node"
)

// TrayState is what the tray icon shows.
type TrayState int

// The tray states, one icon each.
const (
	TrayNotPaired TrayState = iota
	TrayConnecting
	TrayConnected
	TrayOffline
	TrayAttention
)

func (s TrayState) String() string {
	switch s {
	case TrayNotPaired:
		return "not paired"
	case TrayConnecting:
		return "connecting"
	case TrayConnected:
		return "connected"
	case TrayOffline:
		return "offline"
	case TrayAttention:
		return "needs attention"
	}
	return fmt.Sprintf("TrayState(%d)", int(s))
}

// Icon is the tray icon of the state.
func (s TrayState) Icon() fyne.Resource {
	switch s {
	case TrayConnecting:
		return assets.TrayConnecting
	case TrayConnected:
		return assets.TrayConnected
	case TrayOffline:
		return assets.TrayOffline
	case TrayAttention:
		return assets.TrayAttention
	}
	return assets.TrayNotPaired
}

// TrayStateOf maps the agent's status to a tray state; attention is set
// while the owner has something to answer (a consent question, a pairing
// request waiting for approval).
func TrayStateOf(st node.Status, attention bool) TrayState {
	switch {
	case attention || st.State == node.StateRevoked:
		return TrayAttention
	case st.State == node.StateConnected:
		return TrayConnected
	case st.State == node.StateConnecting || st.State == node.StatePairing || st.State == node.StatePending:
		return TrayConnecting
	case st.State == node.StateOffline:
		return TrayOffline
	}
	return TrayNotPaired
}

// StatusLine is the one line the main window shows (and the tray menu,
// but for the next attempt; see TrayStatusLine): the state, the gateway,
// the device, and how long until the next attempt.
func StatusLine(st node.Status, now time.Time) string {
	gw := st.GatewayName
	if gw == "" {
		gw = "the gateway"
	}
	dev := st.DeviceName
	if dev == "" {
		dev = "this device"
	}
	switch st.State {
	case node.StateUnpaired:
		return fmt.Sprintf("Not paired — %s has no gateway yet", dev)
	case node.StatePairing:
		return "Pairing…"
	case node.StatePending:
		if st.VerificationCode != "" {
			return fmt.Sprintf("Waiting for approval — code %s", st.VerificationCode)
		}
		return "Waiting for approval"
	case node.StateConnecting:
		return fmt.Sprintf("Connecting to %s as %s…", gw, dev)
	case node.StateConnected:
		line := fmt.Sprintf("Connected to %s as %s", gw, dev)
		switch {
		case st.OverTCP() && st.FallbackReason != "":
			line += " — " + st.FallbackReason
		case st.OverTCP():
			line += " (over TCP)"
		}
		return line
	case node.StateOffline:
		if !st.RetryAt.IsZero() {
			return fmt.Sprintf("Offline from %s — retrying in %s", gw, retryIn(st.RetryAt.Sub(now)))
		}
		return fmt.Sprintf("Offline from %s (%s)", gw, dev)
	case node.StateRevoked:
		if !st.RevokedAt.IsZero() {
			return fmt.Sprintf("Revoked by %s on %s — forget the gateway or pair again", gw, st.RevokedAt.Local().Format("2006-01-02"))
		}
		return fmt.Sprintf("Revoked by %s; it no longer accepts this device", gw)
	}
	return string(st.State)
}

// TrayStatusLine is the status line of the tray menu. It names the time of
// the next attempt instead of counting down to it: the toolkit replaces
// every item of the tray menu when a label changes, which would reset the
// keyboard selection in an open menu (and could swallow a click) every
// second.
func TrayStatusLine(st node.Status, now time.Time) string {
	if st.State == node.StateOffline && !st.RetryAt.IsZero() {
		return fmt.Sprintf("Offline from %s — retrying at %s", nameOr(st.GatewayName, "the gateway"), st.RetryAt.Local().Format("15:04:05"))
	}
	return StatusLine(st, now)
}

// retryIn says how long until a retry, in whole seconds, never less than 1.
func retryIn(d time.Duration) string {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return fmt.Sprintf("%d s", s)
}

// DetailLine is a second line with what went wrong last, if anything, kept
// short for a menu.
func DetailLine(st node.Status) string {
	// A revoked device's error says what the status line says.
	if st.LastError == "" || st.State == node.StateConnected || st.State == node.StateRevoked {
		return ""
	}
	msg := st.LastError
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	const max = 90
	if r := []rune(msg); len(r) > max {
		msg = string(r[:max-1]) + "…"
	}
	return msg
}
