// Package assets holds the desktop app's icons as PNG files, embedded: the
// application icon and one tray icon per state. The PNGs are drawn by
// icons_test.go (go test ./assets -run TestIcons -update rewrites them), so
// they are reproducible and never edited by hand.
//
// The package only wraps bytes in fyne.Resource values; it uses no cgo and
// must not import the app, node or gateway packages.
package assets

import (
	_ "embed"

	"fyne.io/fyne/v2"
)

var (
	//go:embed icon.png
	iconPNG []byte
	//go:embed tray-not-paired.png
	trayNotPairedPNG []byte
	//go:embed tray-connecting.png
	trayConnectingPNG []byte
	//go:embed tray-connected.png
	trayConnectedPNG []byte
	//go:embed tray-offline.png
	trayOfflinePNG []byte
	//go:embed tray-attention.png
	trayAttentionPNG []byte
)

// The icons as Fyne resources.
var (
	// Icon is the application icon (512×512), also named in FyneApp.toml.
	Icon fyne.Resource = fyne.NewStaticResource("icon.png", iconPNG)
	// TrayNotPaired shows a device that has no gateway yet.
	TrayNotPaired fyne.Resource = fyne.NewStaticResource("tray-not-paired.png", trayNotPairedPNG)
	// TrayConnecting shows a device pairing or connecting.
	TrayConnecting fyne.Resource = fyne.NewStaticResource("tray-connecting.png", trayConnectingPNG)
	// TrayConnected shows a live session with the gateway.
	TrayConnected fyne.Resource = fyne.NewStaticResource("tray-connected.png", trayConnectedPNG)
	// TrayOffline shows a paired device without a session (retrying).
	TrayOffline fyne.Resource = fyne.NewStaticResource("tray-offline.png", trayOfflinePNG)
	// TrayAttention shows that the owner must act: revoked, a consent
	// question or a pairing request waiting.
	TrayAttention fyne.Resource = fyne.NewStaticResource("tray-attention.png", trayAttentionPNG)
)
