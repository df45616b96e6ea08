package desktop

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"strings"
)

// On macOS everything goes through the tools every Mac has: osascript for
// notifications, pbcopy and pbpaste for the clipboard, screencapture for the
// screen.

// notifyScript shows a notification with the title and body taken from the
// script's arguments, so nothing the caller passes becomes AppleScript
// source. The first argument is a fixed word: osascript reads options until
// its first non-option argument, and a title starting with "-" must not be
// taken for one.
const notifyScript = `on run argv
display notification (item 3 of argv) with title (item 2 of argv)
end run`

func notify(ctx context.Context, title, body string) error {
	_, err := toolRun{
		path: "/usr/bin/osascript",
		args: []string{"-e", notifyScript, "palyra", title, body},
	}.run(ctx)
	if err != nil {
		return fmt.Errorf("desktop notifications: running osascript: %w", err)
	}
	return nil
}

// utf8Env is this process's environment with a UTF-8 locale: pbcopy and
// pbpaste read and write text in the locale's encoding, and a process
// started without LANG (by launchd, say) would get MacRoman and mangle
// anything that is not ASCII.
func utf8Env() []string {
	return append(os.Environ(), "LC_ALL=en_US.UTF-8")
}

func readClipboard(ctx context.Context) (string, error) {
	out, err := toolRun{
		path: "/usr/bin/pbpaste",
		args: []string{"-Prefer", "txt"},
		env:  utf8Env(),
	}.run(ctx)
	if err != nil {
		return "", fmt.Errorf("clipboard: running pbpaste: %w", err)
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), nil
}

func writeClipboard(ctx context.Context, text string) error {
	_, err := toolRun{
		path:  "/usr/bin/pbcopy",
		env:   utf8Env(),
		stdin: strings.NewReader(text),
	}.run(ctx)
	if err != nil {
		return fmt.Errorf("clipboard: running pbcopy: %w", err)
	}
	return nil
}

func captureScreen(ctx context.Context) (image.Image, error) {
	f, err := os.CreateTemp("", "palyra-screen-*.png")
	if err != nil {
		return nil, fmt.Errorf("screen capture: creating a file for the image: %w", err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)

	// -x: no sound. Without the Screen Recording permission macOS still
	// gives an image, of the desktop without the windows.
	_, err = toolRun{
		path: "/usr/sbin/screencapture",
		args: []string{"-x", "-t", "png", name},
	}.run(ctx)
	if err != nil {
		if strings.Contains(stderrOf(err), "could not create image") {
			// No window server to capture: a login over ssh, or
			// the login window.
			return nil, fmt.Errorf("screen capture: no display to capture in this session: %w: %w", err, ErrUnsupported)
		}
		return nil, fmt.Errorf("screen capture: running screencapture: %w", err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("screen capture: reading the image: %w", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("screen capture: decoding the PNG from screencapture: %w", err)
	}
	return img, nil
}
