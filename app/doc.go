// Package app is the desktop app's user interface, built with Fyne: the
// tray menu (or, where the desktop has no tray, a main window with the same
// status and actions), the pairing wizard, consent prompts, the local
// gateway's pairing code and its pending requests, and notifications.
//
// It is a thin client of node.Agent and of a LocalGateway: it renders their
// state and calls their methods. It holds no protocol or crypto code, and
// must not import quic-go, gRPC, the gateway packages or identity's key code.
// Everything here builds without cgo (only fyne.io/fyne/v2/app, which the
// root package imports, needs it), so the UI logic is tested with Fyne's test
// driver.
package app
