package app

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palyra/palyra-go/assets"
)

// mainWindow holds the status and the actions where there is no tray.
type mainWindow struct {
	w       fyne.Window
	icon    *canvas.Image
	status  *widget.Label
	detail  *widget.Label
	pair    *widget.Button
	forget  *widget.Button
	local   *widget.Check
	code    *widget.Button
	auto    *widget.Check
	caps    *fyne.Container
	checks  map[string]*widget.Check
	content *fyne.Container
	act     Actions
	capList []CapabilityItem
	// updating is set while show sets widgets, so their callbacks do not
	// echo the change back to the agent.
	updating bool
}

// Main window size: wide enough for the status line and the capability
// descriptions without wrapping most of them, and tall enough for all the
// built-in capabilities below a detail line.
var mainWindowSize = fyne.NewSize(600, 700)

func newMainWindow(u *UI) *mainWindow {
	m := &mainWindow{w: u.fa.NewWindow("Palyra"), checks: map[string]*widget.Check{}}
	m.icon = canvas.NewImageFromResource(TrayNotPaired.Icon())
	m.icon.FillMode = canvas.ImageFillContain
	m.icon.SetMinSize(fyne.NewSize(32, 32))
	m.status = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	m.status.Wrapping = fyne.TextWrapWord
	m.detail = widget.NewLabel("")
	m.detail.Wrapping = fyne.TextWrapWord
	m.detail.Importance = widget.WarningImportance
	m.pair = widget.NewButton(LabelPair, func() { m.act.Pair() })
	m.forget = widget.NewButton(LabelForget, func() { m.act.Forget() })
	m.local = widget.NewCheck(LabelLocal, func(on bool) {
		if !m.updating {
			m.act.SetLocal(on)
		}
	})
	m.code = widget.NewButton(LabelShowCode, func() { m.act.ShowCode() })
	m.auto = widget.NewCheck(LabelAutostart, func(on bool) {
		if !m.updating {
			m.act.SetAutostart(on)
		}
	})
	m.caps = container.New(layout.NewFormLayout())
	quit := widget.NewButton(LabelQuit, func() { m.act.Quit() })
	about := widget.NewButton(LabelAbout, func() { m.act.About() })

	header := container.NewBorder(nil, nil, m.icon, nil, m.status)
	actions := container.NewGridWithColumns(2, m.pair, m.forget)
	local := container.NewGridWithColumns(2, m.local, m.code)
	capCard := widget.NewCard(LabelCapabilities, "What the gateway may use on this device", container.NewVScroll(m.caps))
	// The objects are in reading order, which is also the keyboard's focus
	// order: actions, capabilities, Start at login, About, Quit.
	top := container.NewVBox(header, m.detail, widget.NewSeparator(), actions, local)
	bottom := container.NewHBox(m.auto, layout.NewSpacer(), about, quit)
	m.content = container.New(layout.NewBorderLayout(top, bottom, nil, nil), top, capCard, bottom)
	m.w.SetContent(container.NewPadded(m.content))
	m.w.SetIcon(assets.Icon)
	m.w.Resize(mainWindowSize)
	if u.opts.Tray {
		// Opened from a later launch (UI.ShowMain): the tray stays the
		// app, so closing the window only hides it.
		m.w.SetCloseIntercept(m.w.Hide)
	} else {
		m.w.SetMaster()
	}
	return m
}

// show brings the widgets in line with the model.
func (m *mainWindow) show(md Model, act Actions) {
	m.updating = true
	defer func() { m.updating = false }()
	m.act = act
	m.icon.Resource = md.Tray.Icon()
	m.icon.Refresh()
	m.status.SetText(md.Status)
	m.detail.SetText(md.Detail)
	if hide := md.Detail == ""; hide != m.detail.Hidden {
		if hide {
			m.detail.Hide()
		} else {
			m.detail.Show()
		}
		// The top block changed height: lay the window out again.
		defer m.content.Refresh()
	}
	setEnabled(m.pair, md.CanPair)
	setEnabled(m.forget, md.CanForget)
	if md.LocalGatewayAvailable {
		m.local.Show()
		m.local.SetChecked(md.LocalGatewayOn)
		if md.LocalGatewayBusy {
			m.local.Disable()
		} else {
			m.local.Enable()
		}
	} else {
		m.local.Hide()
	}
	if md.AutostartAvailable == m.auto.Hidden {
		if md.AutostartAvailable {
			m.auto.Show()
		} else {
			m.auto.Hide()
		}
		defer m.content.Refresh()
	}
	m.auto.SetChecked(md.AutostartOn)
	if md.ShowCode {
		m.code.Show()
	} else {
		m.code.Hide()
	}
	if !sameCapNames(m.capList, md.Capabilities) {
		m.caps.RemoveAll()
		clear(m.checks)
		for _, c := range md.Capabilities {
			name := c.Name
			check := widget.NewCheck(c.Text(), func(on bool) {
				if !m.updating {
					m.act.SetCapability(name, on)
				}
			})
			// The ID stays beside the words: it is what the gateway's
			// admin and the command line name.
			desc := widget.NewLabel(CapabilityDetail(c))
			desc.Wrapping = fyne.TextWrapWord
			desc.SizeName = theme.SizeNameCaptionText
			m.checks[name] = check
			m.caps.Add(check)
			m.caps.Add(desc)
		}
	}
	m.capList = md.Capabilities
	for _, c := range md.Capabilities {
		label := c.Text()
		ch := m.checks[c.Name]
		if ch.Text != label {
			ch.Text = label
			ch.Refresh()
		}
		ch.SetChecked(c.Enabled)
	}
}

// CapabilityDetail is the secondary line of a capability in the main
// window: its description, then its ID.
func CapabilityDetail(c CapabilityItem) string {
	if c.Description == "" {
		return c.Name
	}
	return c.Description + " (" + c.Name + ")"
}

func sameCapNames(a, b []CapabilityItem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

func setEnabled(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}
