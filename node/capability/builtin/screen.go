package builtin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/draw"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/desktop"
)

const (
	// maxScreenshotBase64 bounds the encoded image so that the output
	// stays under capability.MaxOutputSize with its JSON around it.
	maxScreenshotBase64 = 700 << 10
	defaultScreenWidth  = 1920
	minScreenWidth      = 64
	jpegQuality         = 85
)

type screenCaptureArgs struct {
	Format   string `json:"format"`
	MaxWidth int    `json:"max_width"`
}

type screenshot struct {
	Format     string `json:"format"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	DataBase64 string `json:"data_base64"`
}

func screenCapture() capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:        "screen.capture",
			Description: "Capture what is on this computer's screen, as a PNG or JPEG image. An image too large to send comes back as a smaller JPEG.",
			Label:       "Capture the screen",
			Schema: json.RawMessage(`{
				"type": "object",
				"properties": {
					"format": {"type": "string", "enum": ["png", "jpeg"], "default": "jpeg"},
					"max_width": {"type": "integer", "minimum": 64, "maximum": 7680, "default": 1920, "description": "Wider screens are scaled down to this width."}
				},
				"additionalProperties": false
			}`),
			Privacy:        capability.PrivacySensitive,
			DefaultEnabled: false,
			DefaultConsent: capability.ConsentAsk,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			args, err := parseScreenCaptureArgs(call.Args)
			if err != nil {
				return nil, err
			}
			img, err := desktop.CaptureScreen(ctx)
			if err != nil {
				return nil, desktopError("capturing the screen", err)
			}
			call.Progress("encoding the screenshot")
			shot, err := encodeScreenshot(img, args.Format, args.MaxWidth)
			if err != nil {
				return nil, err
			}
			return marshal(shot)
		},
		Describe: func(raw json.RawMessage) string {
			args, err := parseScreenCaptureArgs(raw)
			if err != nil {
				return "capture the screen"
			}
			return fmt.Sprintf("capture the screen (as %s, at most %d pixels wide)", args.Format, args.MaxWidth)
		},
	}
}

func parseScreenCaptureArgs(raw json.RawMessage) (screenCaptureArgs, error) {
	args := screenCaptureArgs{Format: "jpeg", MaxWidth: defaultScreenWidth}
	if err := decodeArgs(raw, &args); err != nil {
		return args, err
	}
	return args, nil
}

// encodeScreenshot scales img down to maxWidth (keeping its aspect) and
// encodes it. When that is too large to send, it falls back to JPEG at
// lower quality, then to ever smaller JPEGs, and gives up with
// CodeOutputTooLarge only when even a small one does not fit.
func encodeScreenshot(img image.Image, format string, maxWidth int) (screenshot, error) {
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return screenshot{}, capability.NewError(capability.CodeFailed, "the screen capture is empty")
	}
	width := min(b.Dx(), maxWidth)
	current := scaleToWidth(img, width)

	try := func(img image.Image, format string, quality int) (screenshot, bool, error) {
		var buf bytes.Buffer
		var err error
		if format == "png" {
			err = png.Encode(&buf, img)
		} else {
			err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality})
		}
		if err != nil {
			return screenshot{}, false, fmt.Errorf("encoding the screenshot as %s: %w", format, err)
		}
		if base64.StdEncoding.EncodedLen(buf.Len()) > maxScreenshotBase64 {
			return screenshot{}, false, nil
		}
		sb := img.Bounds()
		return screenshot{
			Format:     format,
			Width:      sb.Dx(),
			Height:     sb.Dy(),
			DataBase64: base64.StdEncoding.EncodeToString(buf.Bytes()),
		}, true, nil
	}

	if shot, ok, err := try(current, format, jpegQuality); ok || err != nil {
		return shot, err
	}
	for _, q := range []int{70, 50} {
		if shot, ok, err := try(current, "jpeg", q); ok || err != nil {
			return shot, err
		}
	}
	// Shrink by a quarter at a time; ten steps take any screen below the
	// minimum width.
	for range 10 {
		width = width * 3 / 4
		if width < minScreenWidth {
			break
		}
		current = scaleToWidth(current, width)
		if shot, ok, err := try(current, "jpeg", 50); ok || err != nil {
			return shot, err
		}
	}
	return screenshot{}, capability.NewError(capability.CodeOutputTooLarge,
		"the screenshot does not fit in %d KiB even as a small, low-quality JPEG", maxScreenshotBase64>>10)
}

// scaleToWidth scales img down to width pixels, keeping its aspect; an
// image no wider is returned as it is.
func scaleToWidth(img image.Image, width int) image.Image {
	b := img.Bounds()
	if b.Dx() <= width {
		return img
	}
	height := max(1, (b.Dy()*width+b.Dx()/2)/b.Dx())
	dst := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	return dst
}
