package app

import (
	"fmt"

	"fyne.io/systray"
	"github.com/godbus/dbus/v5"
)

// statusNotifierWatcher is the bus name of the freedesktop tray host.
const statusNotifierWatcher = "org.kde.StatusNotifierWatcher"

// TrayAvailable reports whether the desktop shows tray icons: a session
// bus with a StatusNotifierWatcher on it. Without a bus the tray code of the
// GUI toolkit can panic, so the app checks first and shows a window instead.
func TrayAvailable() (bool, error) {
	conn, err := dbus.SessionBusPrivate()
	if err != nil {
		return false, fmt.Errorf("connecting to the session bus: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return false, fmt.Errorf("authenticating on the session bus: %w", err)
	}
	if err := conn.Hello(); err != nil {
		return false, fmt.Errorf("greeting the session bus: %w", err)
	}
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, statusNotifierWatcher).Store(&has); err != nil {
		return false, fmt.Errorf("asking the session bus for a tray host: %w", err)
	}
	if !has {
		return false, fmt.Errorf("no tray host (%s) on the session bus", statusNotifierWatcher)
	}
	return true, nil
}

// announceTrayMenu makes the menu just given to the toolkit reach the tray
// host whole. The toolkit's D-Bus menu tells the host that its layout
// changed only when an item changes or a separator is added, not when a
// plain item is added, so items after the last such change (Forget, Quit)
// were missing from the host's copy, or the host kept the empty menu of
// the reset, until the next change. Hiding an item of our own, empty and
// last, is a change that comes after every item and costs nothing to show.
func announceTrayMenu() {
	systray.AddMenuItem("", "").Hide()
}
