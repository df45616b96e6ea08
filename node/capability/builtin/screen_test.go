package builtin

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
)

// gradient is a smooth image, which encodes small.
func gradient(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := img.PixOffset(x, y)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(x*255/w), uint8(y*255/h), 128, 255
		}
	}
	return img
}

// noise is random pixels, which no encoder can make small.
func noise(w, h int) image.Image {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i+8 <= len(img.Pix); i += 8 {
		binary.LittleEndian.PutUint64(img.Pix[i:], rng.Uint64())
	}
	return img
}

// decode checks the screenshot's data is an image of its stated format
// and size.
func decode(t *testing.T, shot screenshot) {
	t.Helper()
	data, err := base64.StdEncoding.DecodeString(shot.DataBase64)
	if err != nil {
		t.Fatal(err)
	}
	var img image.Image
	if shot.Format == "png" {
		img, err = png.Decode(bytes.NewReader(data))
	} else {
		img, err = jpeg.Decode(bytes.NewReader(data))
	}
	if err != nil {
		t.Fatalf("decoding %s: %v", shot.Format, err)
	}
	if b := img.Bounds(); b.Dx() != shot.Width || b.Dy() != shot.Height {
		t.Errorf("image is %dx%d, output says %dx%d", b.Dx(), b.Dy(), shot.Width, shot.Height)
	}
	if len(shot.DataBase64) > maxScreenshotBase64 {
		t.Errorf("%d bytes of base64, more than %d", len(shot.DataBase64), maxScreenshotBase64)
	}
}

func TestEncodeScreenshot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		img           image.Image
		format        string
		maxWidth      int
		wantFormat    string
		wantW, wantH  int
		smallerThanWH bool // the fallback shrank it further
	}{
		{"png as it is", gradient(800, 600), "png", 1920, "png", 800, 600, false},
		{"jpeg scaled keeping the aspect", gradient(2400, 600), "jpeg", 1920, "jpeg", 1920, 480, false},
		{"png scaled", gradient(1000, 501), "png", 100, "png", 100, 50, false},
		// Noise does not fit as PNG: it comes back as a JPEG.
		{"noise falls back to jpeg", noise(800, 500), "png", 1920, "jpeg", 800, 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			shot, err := encodeScreenshot(tc.img, tc.format, tc.maxWidth)
			if err != nil {
				t.Fatal(err)
			}
			if shot.Format != tc.wantFormat {
				t.Errorf("format %s, want %s", shot.Format, tc.wantFormat)
			}
			if tc.smallerThanWH {
				if shot.Width > tc.wantW || shot.Height > tc.wantH || shot.Width*tc.wantH != shot.Height*tc.wantW {
					t.Errorf("fallback size %dx%d, want at most %dx%d with the same aspect", shot.Width, shot.Height, tc.wantW, tc.wantH)
				}
			} else if shot.Width != tc.wantW || shot.Height != tc.wantH {
				t.Errorf("size %dx%d, want %dx%d", shot.Width, shot.Height, tc.wantW, tc.wantH)
			}
			decode(t, shot)
		})
	}
}

// TestEncodeScreenshotTooLarge: an image that stays too large even at the
// smallest width is refused rather than sent broken.
func TestEncodeScreenshotTooLarge(t *testing.T) {
	t.Parallel()
	_, err := encodeScreenshot(noise(64, 24000), "jpeg", 1920)
	if capability.CodeOf(err) != capability.CodeOutputTooLarge {
		t.Fatalf("error = %v, want %s", err, capability.CodeOutputTooLarge)
	}
	_, err = encodeScreenshot(image.NewRGBA(image.Rect(0, 0, 0, 0)), "png", 1920)
	if capability.CodeOf(err) != capability.CodeFailed {
		t.Fatalf("empty image: error = %v, want %s", err, capability.CodeFailed)
	}
}
