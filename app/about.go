package app

import (
	"fmt"
	"runtime"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/palyra/palyra-go/assets"
	"github.com/palyra/palyra-go/internal/version"
)

// AboutTitle is the title of the About window.
const AboutTitle = "About Palyra"

// ShowAbout opens the About window (or brings it forward): the version and
// commit this app was built from, what it was built with, and which device
// it is, which is what a bug report or an admin asks for first.
func (u *UI) ShowAbout() {
	lines := aboutLines(version.Current(), u.status.DeviceName, u.status.DeviceID)
	if u.about != nil {
		u.about.Close()
	}
	w := u.fa.NewWindow(AboutTitle)
	icon := canvas.NewImageFromResource(assets.Icon)
	icon.FillMode = canvas.ImageFillContain
	icon.SetMinSize(fyne.NewSize(64, 64))
	box := container.NewVBox(icon, widget.NewLabelWithStyle("Palyra", fyne.TextAlignCenter, fyne.TextStyle{Bold: true}))
	for _, l := range lines {
		// Selectable, so the version or the device ID can be copied
		// into a bug report.
		e := widget.NewLabel(l)
		e.Selectable = true
		e.Alignment = fyne.TextAlignCenter
		box.Add(e)
	}
	box.Add(container.NewCenter(widget.NewButton("Close", w.Close)))
	w.SetContent(container.NewPadded(box))
	w.SetIcon(assets.Icon)
	w.SetOnClosed(func() {
		if u.about == w {
			u.about = nil
		}
	})
	u.about = w
	w.Show()
	w.RequestFocus()
}

// aboutLines is what the About window says below the name.
func aboutLines(b version.Build, deviceName, deviceID string) []string {
	lines := []string{"Version " + b.String(), fmt.Sprintf("Built with %s for %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)}
	if deviceID == "" {
		return append(lines, "This device is not paired with a gateway")
	}
	return append(lines, fmt.Sprintf("This device: %s, ID %s", deviceName, deviceID))
}
