package desktop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math/bits"
)

// The X Window Dump format, as xwd writes it (X11 XWDFile.h, file version
// 7): a header of 25 big-endian 32-bit fields, the window's name, the
// colormap (12 bytes an entry, big-endian), then the image exactly as the X
// server returned it from GetImage, in the server's byte order.

const (
	xwdHeaderFields = 25
	xwdHeaderSize   = 4 * xwdHeaderFields
	xwdVersion      = 7
	xwdZPixmap      = 2
	xwdColorSize    = 12

	xwdLSBFirst = 0
	xwdMSBFirst = 1

	// X visual classes.
	xwdStaticGray  = 0
	xwdGrayScale   = 1
	xwdStaticColor = 2
	xwdPseudoColor = 3
	xwdTrueColor   = 4
	xwdDirectColor = 5

	// xwdMaxSide bounds each side, as X does (coordinates are 16-bit).
	xwdMaxSide = 1 << 15
	// xwdMaxColors bounds the colormap: the largest real one has 2^16
	// entries (a 16-bit PseudoColor visual).
	xwdMaxColors = 1 << 16
)

// Indexes of the header fields used here.
const (
	xwdFieldHeaderSize = iota
	xwdFieldVersion
	xwdFieldFormat
	xwdFieldDepth
	xwdFieldWidth
	xwdFieldHeight
	xwdFieldXOffset
	xwdFieldByteOrder
	xwdFieldBitmapUnit
	xwdFieldBitmapBitOrder
	xwdFieldBitmapPad
	xwdFieldBitsPerPixel
	xwdFieldBytesPerLine
	xwdFieldVisualClass
	xwdFieldRedMask
	xwdFieldGreenMask
	xwdFieldBlueMask
	xwdFieldBitsPerRGB
	xwdFieldColormapEntries
	xwdFieldNColors
)

var errXWDTruncated = errors.New("xwd: truncated")

// decodeXWD decodes an X Window Dump of a ZPixmap image with 8, 16, 24 or
// 32 bits a pixel: TrueColor and DirectColor through the channel masks
// (DirectColor's colormap is not applied), the other visuals through the
// colormap. Everything the header claims is checked against the data before
// anything is allocated for the image.
func decodeXWD(data []byte) (*image.RGBA, error) {
	if len(data) < xwdHeaderSize {
		return nil, errXWDTruncated
	}
	var h [xwdHeaderFields]uint32
	for i := range h {
		h[i] = binary.BigEndian.Uint32(data[4*i:])
	}
	if h[xwdFieldVersion] != xwdVersion {
		return nil, fmt.Errorf("xwd: file version %d, want %d", h[xwdFieldVersion], xwdVersion)
	}
	if h[xwdFieldFormat] != xwdZPixmap {
		return nil, fmt.Errorf("xwd: pixmap format %d, only ZPixmap (%d) is supported", h[xwdFieldFormat], xwdZPixmap)
	}
	width, height := h[xwdFieldWidth], h[xwdFieldHeight]
	if width == 0 || height == 0 || width > xwdMaxSide || height > xwdMaxSide {
		return nil, fmt.Errorf("xwd: bad size %dx%d", width, height)
	}
	bpp := h[xwdFieldBitsPerPixel]
	switch bpp {
	case 8, 16, 24, 32:
	default:
		return nil, fmt.Errorf("xwd: %d bits per pixel is not supported", bpp)
	}
	order := h[xwdFieldByteOrder]
	if order != xwdLSBFirst && order != xwdMSBFirst {
		return nil, fmt.Errorf("xwd: bad byte order %d", order)
	}
	stride := uint64(h[xwdFieldBytesPerLine])
	bytesPP := uint64(bpp / 8)
	if stride < uint64(width)*bytesPP {
		return nil, fmt.Errorf("xwd: %d bytes per line is too few for %d pixels of %d bits", stride, width, bpp)
	}
	ncolors := uint64(h[xwdFieldNColors])
	if ncolors > xwdMaxColors {
		return nil, fmt.Errorf("xwd: %d colormap entries", ncolors)
	}
	headerSize := uint64(h[xwdFieldHeaderSize])
	if headerSize < xwdHeaderSize {
		return nil, fmt.Errorf("xwd: header size %d is too small", headerSize)
	}
	// All uint64 products of 32-bit values: no overflow.
	pixelsAt := headerSize + ncolors*xwdColorSize
	if need := pixelsAt + stride*uint64(height); need > uint64(len(data)) {
		return nil, fmt.Errorf("%w: %d bytes, the header needs %d", errXWDTruncated, len(data), need)
	}

	var pixel func(p uint32) color.RGBA
	switch class := h[xwdFieldVisualClass]; class {
	case xwdTrueColor, xwdDirectColor:
		r, err1 := newXWDChannel(h[xwdFieldRedMask])
		g, err2 := newXWDChannel(h[xwdFieldGreenMask])
		b, err3 := newXWDChannel(h[xwdFieldBlueMask])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		pixel = func(p uint32) color.RGBA {
			return color.RGBA{R: r.value(p), G: g.value(p), B: b.value(p), A: 0xff}
		}
	case xwdStaticGray, xwdGrayScale, xwdStaticColor, xwdPseudoColor:
		cmap := make(map[uint32]color.RGBA, ncolors)
		for i := range ncolors {
			e := data[headerSize+i*xwdColorSize:]
			cmap[binary.BigEndian.Uint32(e)] = color.RGBA{
				// The top 8 of each 16-bit intensity.
				R: e[4], G: e[6], B: e[8], A: 0xff,
			}
		}
		// A pixel the colormap lacks is black, as an unallocated
		// entry shows.
		pixel = func(p uint32) color.RGBA {
			if c, ok := cmap[p]; ok {
				return c
			}
			return color.RGBA{A: 0xff}
		}
	default:
		return nil, fmt.Errorf("xwd: unknown visual class %d", class)
	}

	var load func(b []byte) uint32
	switch {
	case bpp == 8:
		load = func(b []byte) uint32 { return uint32(b[0]) }
	case bpp == 16 && order == xwdLSBFirst:
		load = func(b []byte) uint32 { return uint32(binary.LittleEndian.Uint16(b)) }
	case bpp == 16:
		load = func(b []byte) uint32 { return uint32(binary.BigEndian.Uint16(b)) }
	case bpp == 24 && order == xwdLSBFirst:
		load = func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 }
	case bpp == 24:
		load = func(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
	case bpp == 32 && order == xwdLSBFirst:
		load = binary.LittleEndian.Uint32
	default:
		load = binary.BigEndian.Uint32
	}

	w, ht, bp := int(width), int(height), int(bytesPP)
	img := image.NewRGBA(image.Rect(0, 0, w, ht))
	pixels := data[pixelsAt:]
	for y := range ht {
		row := pixels[uint64(y)*stride:]
		dst := img.Pix[y*img.Stride:]
		for x := range w {
			c := pixel(load(row[x*bp:]))
			d := dst[4*x : 4*x+4 : 4*x+4]
			d[0], d[1], d[2], d[3] = c.R, c.G, c.B, c.A
		}
	}
	return img, nil
}

// xwdChannel takes one colour channel out of a TrueColor pixel.
type xwdChannel struct {
	shift, bits uint
}

func newXWDChannel(mask uint32) (xwdChannel, error) {
	if mask == 0 {
		return xwdChannel{}, errors.New("xwd: a colour mask is zero")
	}
	shift := uint(bits.TrailingZeros32(mask))
	m := mask >> shift
	if m&(m+1) != 0 {
		return xwdChannel{}, fmt.Errorf("xwd: colour mask %#x is not contiguous", mask)
	}
	return xwdChannel{shift: shift, bits: uint(bits.OnesCount32(m))}, nil
}

// value scales the channel to 8 bits: the top 8 of a wider one, a narrower
// one stretched so its largest value is 255.
func (c xwdChannel) value(p uint32) uint8 {
	v := (p >> c.shift) & (1<<c.bits - 1)
	if c.bits >= 8 {
		return uint8(v >> (c.bits - 8))
	}
	return uint8(v * 255 / (1<<c.bits - 1))
}
