// Package qr renders pairing links as QR codes (PNG and terminal text) and
// reads them back from images, such as a photo of a screen or a screenshot.
// It knows nothing about what the text means; package pairing parses it.
package qr

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // register decoders for the image files people hand us
	_ "image/jpeg"
	_ "image/png"
	"io"

	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/skip2/go-qrcode"
)

// Limits on images to decode: a screenshot of a 4K screen fits, a
// decompression bomb does not.
const (
	MaxImageSide   = 8192
	MaxImageBytes  = 32 << 20
	DefaultPNGSize = 512
)

// ErrNoCode means the image holds no readable QR code.
var ErrNoCode = errors.New("no QR code found in the image")

// PNG renders content as a QR code image of size×size pixels. Medium error
// correction survives a slightly blurred photo while keeping the code small.
func PNG(content string, size int) ([]byte, error) {
	if size <= 0 {
		size = DefaultPNGSize
	}
	png, err := qrcode.Encode(content, qrcode.Medium, size)
	if err != nil {
		return nil, fmt.Errorf("rendering QR code: %w", err)
	}
	return png, nil
}

// PNGModules renders content as a QR code image with moduleSize pixels per
// module (and a quiet zone). Shown at its own size, every module is a whole
// number of pixels, so a screenshot of it reads back reliably; scaled
// images can come out too uneven for a reader.
func PNGModules(content string, moduleSize int) ([]byte, error) {
	if moduleSize < 1 {
		return nil, fmt.Errorf("rendering QR code: %d pixels per module", moduleSize)
	}
	png, err := qrcode.Encode(content, qrcode.Medium, -moduleSize)
	if err != nil {
		return nil, fmt.Errorf("rendering QR code: %w", err)
	}
	return png, nil
}

// Terminal renders content as text for a terminal, two modules per character
// cell: light modules are block characters and dark ones are left to the
// background, which suits the usual dark terminal.
func Terminal(content string) (string, error) {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("rendering QR code: %w", err)
	}
	return q.ToSmallString(false), nil
}

// DecodeReader reads an image (PNG, JPEG or GIF) and returns the text of the
// QR code in it.
func DecodeReader(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImageBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading image: %w", err)
	}
	if len(data) > MaxImageBytes {
		return "", fmt.Errorf("the image is larger than %d MiB", MaxImageBytes>>20)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return "", errors.New("the file is not a PNG, JPEG or GIF image")
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxImageSide || cfg.Height > MaxImageSide {
		return "", fmt.Errorf("the %s image is %d×%d pixels; at most %d on a side is read", format, cfg.Width, cfg.Height, MaxImageSide)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("decoding %s image: %w", format, err)
	}
	return Decode(img)
}

// Decode returns the text of the QR code in img.
func Decode(img image.Image) (text string, err error) {
	// gozxing works through arbitrary pixel data; a panic inside it on a
	// strange image must not take the application down.
	defer func() {
		if r := recover(); r != nil {
			text, err = "", ErrNoCode
		}
	}()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", ErrNoCode
	}
	reader := zxingqr.NewQRCodeReader()
	res, err := reader.Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	if err != nil {
		// The detector misreads the finder patterns of a few clean codes
		// (one in fifty of our own links, rendered by PNG); read such an
		// image as a bare code with its quiet zone instead.
		res, err = reader.Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	}
	if err != nil {
		return "", ErrNoCode
	}
	return res.GetText(), nil
}
