package app

import (
	"time"

	"fyne.io/fyne/v2"

	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
)

// Model is everything the tray menu and the main window show, computed
// from the agent and the local gateway; views are pure functions of it.
type Model struct {
	Status string
	// TrayStatus is Status as the tray menu says it (see TrayStatusLine).
	TrayStatus string
	Detail     string
	Tray       TrayState
	// CanPair is false while a pairing connects. While its request waits
	// for approval, pairing brings the wizard back on it.
	CanPair   bool
	CanForget bool
	// Capabilities are the check items under the "Shared capabilities"
	// heading.
	Capabilities []CapabilityItem
	// LocalGateway* describe the "Run local gateway" item; it is absent
	// when the app was built without one.
	LocalGatewayAvailable bool
	LocalGatewayOn        bool
	// LocalGatewayBusy is set while it starts or stops.
	LocalGatewayBusy bool
	// ShowCode offers "Show pairing code…" (only while the local gateway
	// runs).
	ShowCode bool
	// Autostart* describe the "Start at login" item; it is absent where
	// the app cannot start itself at login (see Options.Autostart).
	AutostartAvailable bool
	AutostartOn        bool
}

// CapabilityItem is one shared capability.
type CapabilityItem struct {
	// Name is the capability's ID (clipboard.read), which admins use.
	Name string
	// Label is what people read ("Read the clipboard"); the Name where the
	// capability has no label.
	Label       string
	Description string
	Enabled     bool
	// Asks is set when the capability asks before each use.
	Asks bool
}

// Text is the item's label as the menu and the window show it.
func (c CapabilityItem) Text() string {
	if c.Asks {
		return c.Label + " (asks)"
	}
	return c.Label
}

// LocalState is the local gateway's state as the model needs it.
type LocalState struct {
	Available, On, Busy bool
	// Paired is set when this device is paired with the local gateway.
	Paired bool
}

// LocalStoppedDetail is the detail line while this device, paired with the
// local gateway, cannot reach it because it is turned off.
const LocalStoppedDetail = "The local gateway is stopped; turn on \u201c" + LabelLocal + "\u201d to connect again."

// BuildModel computes the model.
func BuildModel(st node.Status, caps []capability.Info, local LocalState, attention bool, now time.Time) Model {
	m := Model{
		Status:                StatusLine(st, now),
		TrayStatus:            TrayStatusLine(st, now),
		Detail:                DetailLine(st),
		Tray:                  TrayStateOf(st, attention),
		CanPair:               st.State != node.StatePairing,
		CanForget:             st.State != node.StateUnpaired && st.State != node.StatePairing && st.State != node.StatePending,
		LocalGatewayAvailable: local.Available,
		LocalGatewayOn:        local.On,
		LocalGatewayBusy:      local.Busy,
		ShowCode:              local.On && !local.Busy,
	}
	if local.Available && local.Paired && !local.On && !local.Busy &&
		(st.State == node.StateOffline || st.State == node.StateConnecting) {
		// Say why in plain words, not the transport error of the moment.
		m.Detail = LocalStoppedDetail
	}
	for _, c := range caps {
		m.Capabilities = append(m.Capabilities, CapabilityItem{
			Name: c.Name, Label: nameOr(c.Label, c.Name), Description: c.Description,
			Enabled: c.Enabled, Asks: c.Consent == capability.ConsentAsk,
		})
	}
	return m
}

// Actions are what the menu and the window's controls do.
type Actions struct {
	Pair          func()
	SetCapability func(name string, on bool)
	SetLocal      func(on bool)
	SetAutostart  func(on bool)
	ShowCode      func()
	Forget        func()
	About         func()
	Quit          func()
}

// Menu labels, shared by the tray menu and the main window.
const (
	LabelPair         = "Pair with gateway…"
	LabelCapabilities = "Shared capabilities"
	LabelLocal        = "Run local gateway"
	LabelShowCode     = "Show pairing code…"
	LabelAutostart    = "Start at login"
	LabelForget       = "Forget gateway…"
	LabelAbout        = "About Palyra…"
	LabelQuit         = "Quit"
)

// Menu is the tray menu for m.
func (m Model) Menu(act Actions) *fyne.Menu {
	status := fyne.NewMenuItem(m.TrayStatus, nil)
	status.Disabled = true
	items := []*fyne.MenuItem{status}
	if m.Detail != "" {
		d := fyne.NewMenuItem(m.Detail, nil)
		d.Disabled = true
		items = append(items, d)
	}
	items = append(items, fyne.NewMenuItemSeparator())

	pair := fyne.NewMenuItem(LabelPair, act.Pair)
	pair.Disabled = !m.CanPair
	items = append(items, pair)

	// The capabilities are check items under a heading in the menu itself,
	// not in a submenu: hosts built on libdbusmenu-gtk (Xfce, MATE,
	// Cinnamon, Budgie) can show a submenu empty when the menu is
	// rebuilt while they read it, and the toolkit rebuilds the whole tray
	// menu on every change.
	heading := fyne.NewMenuItem(LabelCapabilities, nil)
	heading.Disabled = true
	items = append(items, fyne.NewMenuItemSeparator(), heading)
	// Menu items have no tooltip in the tray protocol (dbusmenu), so the
	// description and the ID are in the main window only.
	for _, c := range m.Capabilities {
		it := fyne.NewMenuItem(c.Text(), func() { act.SetCapability(c.Name, !c.Enabled) })
		it.Checked = c.Enabled
		items = append(items, it)
	}
	items = append(items, fyne.NewMenuItemSeparator())

	if m.LocalGatewayAvailable {
		local := fyne.NewMenuItem(LabelLocal, func() { act.SetLocal(!m.LocalGatewayOn) })
		local.Checked = m.LocalGatewayOn
		local.Disabled = m.LocalGatewayBusy
		items = append(items, local)
		if m.ShowCode {
			items = append(items, fyne.NewMenuItem(LabelShowCode, act.ShowCode))
		}
	}
	if m.AutostartAvailable {
		auto := fyne.NewMenuItem(LabelAutostart, func() { act.SetAutostart(!m.AutostartOn) })
		auto.Checked = m.AutostartOn
		items = append(items, auto)
	}
	forget := fyne.NewMenuItem(LabelForget, act.Forget)
	forget.Disabled = !m.CanForget
	items = append(items, forget, fyne.NewMenuItemSeparator(), fyne.NewMenuItem(LabelAbout, act.About))
	quit := fyne.NewMenuItem(LabelQuit, act.Quit)
	quit.IsQuit = true
	items = append(items, quit)
	return fyne.NewMenu("Palyra", items...)
}
