package desktop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"strings"
	"testing"
)

// The decoder's other test is the real one: xwd on Xvfb at each depth
// (TestCaptureScreenX11). These cover what Xvfb on this machine does not
// produce — big-endian pixels, 24-bit packed pixels, other masks — and
// malformed dumps.

// xwdSpec describes a dump for encodeXWD.
type xwdSpec struct {
	w, h, bpp, order, class int
	masks                   [3]uint32
	pad                     int                  // extra bytes at the end of each line
	colors                  map[uint32][3]uint16 // colormap: pixel to 16-bit RGB
	pixel                   func(x, y int) uint32
}

// encodeXWD writes a dump the way xwd lays it out.
func encodeXWD(s xwdSpec) []byte {
	name := "xwdump\x00"
	stride := s.w*s.bpp/8 + s.pad
	h := [xwdHeaderFields]uint32{
		xwdFieldHeaderSize:      uint32(xwdHeaderSize + len(name)),
		xwdFieldVersion:         xwdVersion,
		xwdFieldFormat:          xwdZPixmap,
		xwdFieldDepth:           24,
		xwdFieldWidth:           uint32(s.w),
		xwdFieldHeight:          uint32(s.h),
		xwdFieldByteOrder:       uint32(s.order),
		xwdFieldBitmapUnit:      32,
		xwdFieldBitmapPad:       32,
		xwdFieldBitsPerPixel:    uint32(s.bpp),
		xwdFieldBytesPerLine:    uint32(stride),
		xwdFieldVisualClass:     uint32(s.class),
		xwdFieldRedMask:         s.masks[0],
		xwdFieldGreenMask:       s.masks[1],
		xwdFieldBlueMask:        s.masks[2],
		xwdFieldBitsPerRGB:      8,
		xwdFieldColormapEntries: uint32(len(s.colors)),
		xwdFieldNColors:         uint32(len(s.colors)),
	}
	var b bytes.Buffer
	for _, v := range h {
		_ = binary.Write(&b, binary.BigEndian, v)
	}
	b.WriteString(name)
	for p, c := range s.colors {
		_ = binary.Write(&b, binary.BigEndian, p)
		for _, v := range c {
			_ = binary.Write(&b, binary.BigEndian, v)
		}
		b.Write([]byte{7, 0}) // flags, pad
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if s.order == xwdMSBFirst {
		bo = binary.BigEndian
	}
	for y := range s.h {
		for x := range s.w {
			p := s.pixel(x, y)
			var px [4]byte
			bo.PutUint32(px[:], p)
			switch {
			case s.bpp == 8:
				b.WriteByte(byte(p))
			case s.bpp == 16:
				var q [2]byte
				bo.PutUint16(q[:], uint16(p))
				b.Write(q[:])
			case s.bpp == 24 && s.order == xwdLSBFirst:
				b.Write(px[:3])
			case s.bpp == 24:
				b.Write(px[1:])
			default:
				b.Write(px[:])
			}
		}
		b.Write(make([]byte, s.pad))
	}
	return b.Bytes()
}

// testPattern gives each pixel a colour from its position, so any mix-up of
// rows, columns or channels shows.
func testPattern(x, y int) color.RGBA {
	return color.RGBA{R: uint8(x * 17), G: uint8(y * 29), B: uint8(x*3 + y*7), A: 0xff}
}

func TestDecodeXWD(t *testing.T) {
	t.Parallel()
	const w, h = 11, 5
	pack888 := func(shiftR, shiftG, shiftB uint) func(x, y int) uint32 {
		return func(x, y int) uint32 {
			c := testPattern(x, y)
			return uint32(c.R)<<shiftR | uint32(c.G)<<shiftG | uint32(c.B)<<shiftB
		}
	}
	// A colormap with 16 entries whose pixel values are not their
	// indexes.
	colors := map[uint32][3]uint16{}
	for i := range 16 {
		c := testPattern(i, i)
		colors[uint32(200+i)] = [3]uint16{uint16(c.R)<<8 | 0x7f, uint16(c.G) << 8, uint16(c.B)<<8 | 0xff}
	}
	for _, tc := range []struct {
		name string
		spec xwdSpec
		want func(x, y int) color.RGBA
	}{
		{"32 bits LSB first", xwdSpec{w: w, h: h, bpp: 32, order: xwdLSBFirst, class: xwdTrueColor,
			masks: [3]uint32{0xff0000, 0xff00, 0xff}, pixel: pack888(16, 8, 0)}, testPattern},
		{"32 bits MSB first, padded lines", xwdSpec{w: w, h: h, bpp: 32, order: xwdMSBFirst, class: xwdTrueColor,
			masks: [3]uint32{0xff0000, 0xff00, 0xff}, pad: 12, pixel: pack888(16, 8, 0)}, testPattern},
		{"32 bits BGR masks", xwdSpec{w: w, h: h, bpp: 32, order: xwdLSBFirst, class: xwdDirectColor,
			masks: [3]uint32{0xff, 0xff00, 0xff0000}, pixel: pack888(0, 8, 16)}, testPattern},
		{"24 bits LSB first", xwdSpec{w: w, h: h, bpp: 24, order: xwdLSBFirst, class: xwdTrueColor,
			masks: [3]uint32{0xff0000, 0xff00, 0xff}, pad: 3, pixel: pack888(16, 8, 0)}, testPattern},
		{"24 bits MSB first", xwdSpec{w: w, h: h, bpp: 24, order: xwdMSBFirst, class: xwdTrueColor,
			masks: [3]uint32{0xff0000, 0xff00, 0xff}, pad: 1, pixel: pack888(16, 8, 0)}, testPattern},
		{"30 bits in 32 (10-10-10)", xwdSpec{w: w, h: h, bpp: 32, order: xwdLSBFirst, class: xwdTrueColor,
			masks: [3]uint32{0x3ff00000, 0xffc00, 0x3ff},
			pixel: func(x, y int) uint32 {
				c := testPattern(x, y)
				return uint32(c.R)<<22 | 3<<20 | uint32(c.G)<<12 | uint32(c.B)<<2
			}}, testPattern},
		{"16 bits 5-6-5 MSB first", xwdSpec{w: w, h: h, bpp: 16, order: xwdMSBFirst, class: xwdTrueColor,
			masks: [3]uint32{0xf800, 0x7e0, 0x1f}, pad: 2,
			pixel: func(x, y int) uint32 {
				if (x+y)%2 == 0 {
					return 0xf800 | 0x1f // red and blue full
				}
				return 0x10<<11 | 0x20<<5 | 0x01 // halfway, halfway, 1/31
			}},
			func(x, y int) color.RGBA {
				if (x+y)%2 == 0 {
					return color.RGBA{R: 255, B: 255, A: 255}
				}
				return color.RGBA{R: 16 * 255 / 31, G: 32 * 255 / 63, B: 255 / 31, A: 255}
			}},
		{"8 bits PseudoColor", xwdSpec{w: w, h: h, bpp: 8, order: xwdLSBFirst, class: xwdPseudoColor,
			colors: colors,
			pixel: func(x, y int) uint32 {
				if x == w-1 {
					return 5 // not in the colormap: black
				}
				return uint32(200 + (x+y)%16)
			}},
			func(x, y int) color.RGBA {
				if x == w-1 {
					return color.RGBA{A: 255}
				}
				i := (x + y) % 16
				return testPattern(i, i)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img, err := decodeXWD(encodeXWD(tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != image.Rect(0, 0, w, h) {
				t.Fatalf("bounds %v, want %dx%d", img.Bounds(), w, h)
			}
			for y := range h {
				for x := range w {
					if got, want := img.RGBAAt(x, y), tc.want(x, y); got != want {
						t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got, want)
					}
				}
			}
		})
	}
}

func TestDecodeXWDMalformed(t *testing.T) {
	t.Parallel()
	good := xwdSpec{w: 4, h: 3, bpp: 32, order: xwdLSBFirst, class: xwdTrueColor,
		masks: [3]uint32{0xff0000, 0xff00, 0xff}, pixel: func(x, y int) uint32 { return 0 }}
	valid := encodeXWD(good)
	if _, err := decodeXWD(valid); err != nil {
		t.Fatalf("the valid dump the cases start from: %v", err)
	}
	set := func(field int, v uint32) []byte {
		b := bytes.Clone(valid)
		binary.BigEndian.PutUint32(b[4*field:], v)
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"short header", valid[:xwdHeaderSize-1], "truncated"},
		{"short pixels", valid[:len(valid)-1], "truncated"},
		{"version", set(xwdFieldVersion, 6), "file version 6"},
		{"XYPixmap", set(xwdFieldFormat, 1), "only ZPixmap"},
		{"zero width", set(xwdFieldWidth, 0), "bad size"},
		{"huge height", set(xwdFieldHeight, 1<<31), "bad size"},
		{"4 bits a pixel", set(xwdFieldBitsPerPixel, 4), "4 bits per pixel"},
		{"byte order", set(xwdFieldByteOrder, 2), "bad byte order"},
		{"short lines", set(xwdFieldBytesPerLine, 15), "too few"},
		// Claims far more data than there is: refused before
		// allocating for it.
		{"huge stride", set(xwdFieldBytesPerLine, 1<<31), "truncated"},
		{"huge colormap", set(xwdFieldNColors, 1<<30), "colormap entries"},
		{"colormap past the end", set(xwdFieldNColors, 1<<16), "truncated"},
		{"small header size", set(xwdFieldHeaderSize, 8), "header size"},
		{"header size past the end", set(xwdFieldHeaderSize, 1<<31), "truncated"},
		{"zero mask", set(xwdFieldGreenMask, 0), "mask is zero"},
		{"split mask", set(xwdFieldRedMask, 0xf0f000), "not contiguous"},
		{"visual class", set(xwdFieldVisualClass, 9), "visual class 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeXWD(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decodeXWD = %v, want an error saying %q", err, tc.want)
			}
			if tc.want == "truncated" && !errors.Is(err, errXWDTruncated) {
				t.Errorf("error %v does not wrap errXWDTruncated", err)
			}
		})
	}
}

// FuzzDecodeXWD: no dump makes the decoder panic or return an image of
// another size than its header says, starting from valid dumps of each
// layout.
func FuzzDecodeXWD(f *testing.F) {
	pixel := func(x, y int) uint32 { return uint32(x*0x010203 + y*0x300000) }
	for _, s := range []xwdSpec{
		{w: 3, h: 2, bpp: 32, order: xwdLSBFirst, class: xwdTrueColor, masks: [3]uint32{0xff0000, 0xff00, 0xff}},
		{w: 3, h: 2, bpp: 24, order: xwdMSBFirst, class: xwdTrueColor, masks: [3]uint32{0xff0000, 0xff00, 0xff}, pad: 1},
		{w: 3, h: 2, bpp: 16, order: xwdLSBFirst, class: xwdTrueColor, masks: [3]uint32{0xf800, 0x7e0, 0x1f}},
		{w: 3, h: 2, bpp: 8, order: xwdLSBFirst, class: xwdPseudoColor, colors: map[uint32][3]uint16{0: {1, 2, 3}, 1: {0xffff, 0, 0}}},
	} {
		s.pixel = pixel
		f.Add(encodeXWD(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decodeXWD(data)
		if err != nil {
			return
		}
		w := binary.BigEndian.Uint32(data[4*xwdFieldWidth:])
		h := binary.BigEndian.Uint32(data[4*xwdFieldHeight:])
		if img.Bounds() != image.Rect(0, 0, int(w), int(h)) {
			t.Errorf("image is %v, the header says %dx%d", img.Bounds(), w, h)
		}
	})
}
