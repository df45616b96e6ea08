package qr

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"
)

const sample = "palyra://pair?v=1&gw=127.0.0.1:7443&ca=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&id=42&k=AAAAAAAAAAAAAAAAAAAAAA&exp=1900000000&n=test"

func TestPNGRoundTrip(t *testing.T) {
	t.Parallel()
	for _, size := range []int{256, 512, 1024} {
		png, err := PNG(sample, size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeReader(bytes.NewReader(png))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if got != sample {
			t.Fatalf("size %d: decoded %q, want %q", size, got, sample)
		}
	}
}

// A QR code inside a larger, busier picture (as in a screenshot) and saved
// lossily (as in a photo) must still be found.
func TestDecodeInsideLargerJPEG(t *testing.T) {
	t.Parallel()
	pngBytes, err := PNG(sample, 300)
	if err != nil {
		t.Fatal(err)
	}
	code, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	canvas := image.NewRGBA(image.Rect(0, 0, 1280, 800))
	for y := range 800 {
		for x := range 1280 {
			canvas.Set(x, y, color.RGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	// A white window with the code in it, away from the origin.
	for y := 200; y < 600; y++ {
		for x := 500; x < 900; x++ {
			canvas.Set(x, y, color.White)
		}
	}
	for y := range 300 {
		for x := range 300 {
			canvas.Set(550+x, 250+y, code.At(x, y))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, canvas, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got != sample {
		t.Fatalf("decoded %q", got)
	}
}

// The terminal rendering is checked by turning its characters back into
// modules and decoding those: what a person scans off the terminal.
func TestTerminalRoundTrip(t *testing.T) {
	t.Parallel()
	text, err := Terminal(sample)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	width := len([]rune(lines[0]))
	const scale = 6
	img := image.NewGray(image.Rect(0, 0, width*scale, len(lines)*2*scale))
	for row, line := range lines {
		runes := []rune(line)
		if len(runes) != width {
			t.Fatalf("line %d has %d cells, want %d", row, len(runes), width)
		}
		for col, r := range runes {
			// Block characters are the light modules (see Terminal).
			var top, bottom bool
			switch r {
			case ' ':
			case '█':
				top, bottom = true, true
			case '▀':
				top = true
			case '▄':
				bottom = true
			default:
				t.Fatalf("unexpected character %q", r)
			}
			for dy := range scale {
				for dx := range scale {
					if top {
						img.SetGray(col*scale+dx, row*2*scale+dy, color.Gray{255})
					}
					if bottom {
						img.SetGray(col*scale+dx, (row*2+1)*scale+dy, color.Gray{255})
					}
				}
			}
		}
	}
	got, err := Decode(img)
	if err != nil {
		t.Fatal(err)
	}
	if got != sample {
		t.Fatalf("decoded %q", got)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	blank := image.NewGray(image.Rect(0, 0, 200, 200))
	var blankPNG bytes.Buffer
	if err := png.Encode(&blankPNG, blank); err != nil {
		t.Fatal(err)
	}
	huge := image.NewGray(image.Rect(0, 0, MaxImageSide+1, 1))
	var hugePNG bytes.Buffer
	if err := png.Encode(&hugePNG, huge); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"blank image":  {blankPNG.Bytes(), "no QR code"},
		"not an image": {[]byte("hello, this is text"), "not a PNG, JPEG or GIF"},
		"empty file":   {nil, "not a PNG, JPEG or GIF"},
		"too wide":     {hugePNG.Bytes(), "at most 8192 on a side"},
		"truncated":    {blankPNG.Bytes()[:blankPNG.Len()/2], "decoding png image"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeReader(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func FuzzDecodeReader(f *testing.F) {
	pngBytes, err := PNG(sample, 128)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pngBytes)
	f.Add([]byte("GIF89a"))
	f.Add([]byte{0xff, 0xd8, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		text, err := DecodeReader(bytes.NewReader(data))
		if err == nil && text == "" {
			t.Fatal("decoded an empty code without error")
		}
	})
}

// TestPNGRoundTripManyLinks: every link the gateway could mint reads back
// from its own PNG, including one the detector alone misreads.
func TestPNGRoundTripManyLinks(t *testing.T) {
	t.Parallel()
	links := []string{"palyra://pair?v=1&gw=127.0.0.1:45469&ca=2mZDT9kkMEqmd_kBq83S4S5E2tE-op8rryfoTZToNks&id=74&k=gb76RqV575sMYhDwQmfjmQ&exp=1795435211&n=Test+local+gateway"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 150 {
		ca, k := make([]byte, 32), make([]byte, 16)
		for i := range ca {
			ca[i] = byte(rng.Uint32())
		}
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		links = append(links, fmt.Sprintf("palyra://pair?v=1&gw=127.0.0.1:%d&ca=%s&id=%02d&k=%s&exp=%d&n=Test+gateway",
			1024+rng.IntN(60000), base64.RawURLEncoding.EncodeToString(ca), rng.IntN(100),
			base64.RawURLEncoding.EncodeToString(k), 1795435211+rng.IntN(1e6)))
	}
	for _, link := range links {
		png, err := PNG(link, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeReader(bytes.NewReader(png))
		if err != nil || got != link {
			t.Fatalf("%s: decoded %q, %v", link, got, err)
		}
	}
}

// TestPNGModulesRoundTrip: codes drawn at whole pixels per module read back,
// and a module size below one is refused.
func TestPNGModulesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, size := range []int{3, 4, 6} {
		png, err := PNGModules(sample, size)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeReader(bytes.NewReader(png)); err != nil || got != sample {
			t.Fatalf("%d px a module: decoded %q, %v", size, got, err)
		}
	}
	if _, err := PNGModules(sample, 0); err == nil {
		t.Fatal("0 pixels a module accepted")
	}
}
