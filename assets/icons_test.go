package assets

import (
	"bytes"
	"flag"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the PNG icons from the drawing code")

// shape returns the colour at a point of the unit square (0..1 on both
// axes, y down), or a transparent colour outside the shape.
type shape func(x, y float64) color.NRGBA

// Colours of the tray states and of the app icon.
var (
	white  = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	indigo = color.NRGBA{0x2f, 0x3f, 0x9f, 0xff}
	teal   = color.NRGBA{0x26, 0xa6, 0x9a, 0xff}
	grey   = color.NRGBA{0x8a, 0x8f, 0x98, 0xff}
	amber  = color.NRGBA{0xf2, 0xa1, 0x1f, 0xff}
	green  = color.NRGBA{0x2e, 0xa0, 0x4f, 0xff}
	slate  = color.NRGBA{0x5b, 0x64, 0x72, 0xff}
	red    = color.NRGBA{0xd7, 0x3a, 0x31, 0xff}
	clear  = color.NRGBA{}
)

// Sizes in pixels, and samples per pixel along each axis.
const (
	iconSize    = 512
	traySize    = 64
	supersample = 4
)

// icons are the files this package embeds and how each is drawn.
var icons = []struct {
	file string
	size int
	draw shape
}{
	{"icon.png", iconSize, appIcon},
	{"tray-not-paired.png", traySize, trayIcon(grey, markRing)},
	{"tray-connecting.png", traySize, trayIcon(amber, markDots)},
	{"tray-connected.png", traySize, trayIcon(green, markNode)},
	{"tray-offline.png", traySize, trayIcon(slate, markSlash)},
	{"tray-attention.png", traySize, trayIcon(red, markBang)},
}

// TestIcons checks that the committed PNGs are what the drawing code makes
// (with -update it writes them), and that each decodes at its size.
func TestIcons(t *testing.T) {
	for _, ic := range icons {
		t.Run(ic.file, func(t *testing.T) {
			want := encode(t, render(ic.size, ic.draw))
			if *update {
				if err := os.WriteFile(ic.file, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(ic.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s differs from what icons_test.go draws; run go test ./assets -run TestIcons -update", ic.file)
			}
			img, err := png.Decode(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != ic.size || b.Dy() != ic.size {
				t.Fatalf("%s is %v, want %d×%d", ic.file, b, ic.size, ic.size)
			}
		})
	}
	// The embedded resources are those files.
	for res, file := range map[*[]byte]string{&iconPNG: "icon.png", &trayConnectedPNG: "tray-connected.png"} {
		b, _ := os.ReadFile(file)
		if !bytes.Equal(*res, b) {
			t.Errorf("embedded %s is stale", file)
		}
	}
	if Icon.Name() != "icon.png" || len(TrayAttention.Content()) == 0 {
		t.Errorf("resources: %q, %d bytes", Icon.Name(), len(TrayAttention.Content()))
	}
}

func encode(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// render draws s at size×size with supersampling, so edges are smooth and
// the result is the same on every machine (no floating-point differences
// matter at 8 bits after averaging, and the code uses no platform maths).
func render(size int, s shape) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	n := float64(supersample * supersample)
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < supersample; sy++ {
				for sx := 0; sx < supersample; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/supersample) / float64(size)
					y := (float64(py) + (float64(sy)+0.5)/supersample) / float64(size)
					c := s(x, y)
					fa := float64(c.A) / 255
					r += float64(c.R) * fa
					g += float64(c.G) * fa
					b += float64(c.B) * fa
					a += fa
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(math.Round(r / a)), G: uint8(math.Round(g / a)), B: uint8(math.Round(b / a)),
				A: uint8(math.Round(a / n * 255)),
			})
		}
	}
	return img
}

func dist(x1, y1, x2, y2 float64) float64 { return math.Hypot(x1-x2, y1-y2) }

// segDist is the distance from (x, y) to the segment (ax, ay)–(bx, by).
func segDist(x, y, ax, ay, bx, by float64) float64 {
	dx, dy := bx-ax, by-ay
	t := ((x-ax)*dx + (y-ay)*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	return dist(x, y, ax+t*dx, ay+t*dy)
}

// roundedSquare reports whether (x, y) lies in the square inset by m with
// corner radius r.
func roundedSquare(x, y, m, r float64) bool {
	if x < m || y < m || x > 1-m || y > 1-m {
		return false
	}
	cx := math.Max(m+r, math.Min(1-m-r, x))
	cy := math.Max(m+r, math.Min(1-m-r, y))
	return dist(x, y, cx, cy) <= r
}

// appIcon is a rounded indigo square with a small network: one device in
// the middle joined to three others.
func appIcon(x, y float64) color.NRGBA {
	if !roundedSquare(x, y, 0.04, 0.2) {
		return clear
	}
	hub := [2]float64{0.5, 0.54}
	leaves := [][2]float64{{0.5, 0.22}, {0.23, 0.72}, {0.77, 0.72}}
	if dist(x, y, hub[0], hub[1]) <= 0.13 {
		if dist(x, y, hub[0], hub[1]) <= 0.07 {
			return teal
		}
		return white
	}
	for _, l := range leaves {
		if dist(x, y, l[0], l[1]) <= 0.08 {
			return white
		}
		if segDist(x, y, hub[0], hub[1], l[0], l[1]) <= 0.025 {
			return white
		}
	}
	return indigo
}

// trayIcon is a disc of the state's colour with a white mark.
func trayIcon(c color.NRGBA, mark func(x, y float64) bool) shape {
	return func(x, y float64) color.NRGBA {
		d := dist(x, y, 0.5, 0.5)
		if d > 0.47 {
			return clear
		}
		if mark(x, y) {
			return white
		}
		return c
	}
}

// markRing: not paired — an empty ring.
func markRing(x, y float64) bool {
	d := dist(x, y, 0.5, 0.5)
	return d >= 0.17 && d <= 0.26
}

// markDots: connecting — three dots.
func markDots(x, y float64) bool {
	for _, cx := range []float64{0.28, 0.5, 0.72} {
		if dist(x, y, cx, 0.5) <= 0.075 {
			return true
		}
	}
	return false
}

// markNode: connected — a filled centre with a ring round it.
func markNode(x, y float64) bool {
	d := dist(x, y, 0.5, 0.5)
	return d <= 0.12 || (d >= 0.2 && d <= 0.27)
}

// markSlash: offline — a ring struck through.
func markSlash(x, y float64) bool {
	d := dist(x, y, 0.5, 0.5)
	return (d >= 0.18 && d <= 0.25) || segDist(x, y, 0.3, 0.7, 0.7, 0.3) <= 0.045
}

// markBang: needs attention — an exclamation mark.
func markBang(x, y float64) bool {
	return segDist(x, y, 0.5, 0.24, 0.5, 0.56) <= 0.06 || dist(x, y, 0.5, 0.73) <= 0.065
}
