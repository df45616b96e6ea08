//go:build !linux && !freebsd && !netbsd && !openbsd && !darwin && !windows

package desktop

import (
	"context"
	"fmt"
	"image"
	"runtime"
)

// Elsewhere (illumos, Plan 9, wasm...) there is no desktop this package
// knows how to reach.

func notify(ctx context.Context, title, body string) error {
	return fmt.Errorf("desktop notifications: not implemented on %s: %w", runtime.GOOS, ErrUnsupported)
}

func readClipboard(ctx context.Context) (string, error) {
	return "", fmt.Errorf("clipboard: not implemented on %s: %w", runtime.GOOS, ErrUnsupported)
}

func writeClipboard(ctx context.Context, text string) error {
	return fmt.Errorf("clipboard: not implemented on %s: %w", runtime.GOOS, ErrUnsupported)
}

func captureScreen(ctx context.Context) (image.Image, error) {
	return nil, fmt.Errorf("screen capture: not implemented on %s: %w", runtime.GOOS, ErrUnsupported)
}
