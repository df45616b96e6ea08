// Package desktop reaches the parts of the desktop a node shares:
// notifications, the clipboard and the screen, on Linux and the BSDs
// (freedesktop D-Bus notifications; X11 or Wayland clipboard and screen
// tools), macOS and Windows, without cgo. Where the platform or the session
// lacks what is needed, calls fail with an error wrapping ErrUnsupported that
// says what is missing, so a caller can tell "not here" from "went wrong".
//
// It talks to the session's own services and tools only (D-Bus, xclip,
// pbcopy, powershell...), and imports nothing from the rest of the node: the
// capabilities that expose it to peers decide who may call it.
package desktop

import (
	"context"
	"errors"
	"image"
)

// ErrUnsupported: this platform or session cannot do it (no display, no
// notification service, no clipboard tool...).
var ErrUnsupported = errors.New("unsupported on this platform")

// Notify shows a desktop notification from "Palyra" with a title and a body
// of plain text: markup in them is shown as typed, never interpreted.
func Notify(ctx context.Context, title, body string) error {
	return notify(ctx, title, body)
}

// ReadClipboard returns the clipboard's text. An empty clipboard, or one
// holding something other than text (an image, files), reads as "" with no
// error.
func ReadClipboard(ctx context.Context) (string, error) {
	return readClipboard(ctx)
}

// WriteClipboard replaces the clipboard's text. When it returns nil the text
// is on the clipboard: a ReadClipboard that follows reads it back (unless
// another program has replaced it in between). Writing "" empties the
// clipboard.
func WriteClipboard(ctx context.Context, text string) error {
	return writeClipboard(ctx, text)
}

// CaptureScreen captures the whole screen (all of the primary display).
func CaptureScreen(ctx context.Context) (image.Image, error) {
	return captureScreen(ctx)
}
