package app

import (
	"fmt"

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
